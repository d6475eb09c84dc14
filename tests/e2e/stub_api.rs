//! The HTTP/1.1 of the in-test API servers that stand in for systems no test machine reaches
//! (a Kubernetes API server, RunPod): one request per connection, over plain TCP or the lab's
//! TLS, each on its own thread.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

pub(super) struct Request {
    pub method: String,
    pub path: String,
    /// Values percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

pub(super) struct Answer {
    pub code: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Sent without a length and kept open this long after the body, as a stream that follows
    /// (a log with more to come) is.
    pub hold_open: Option<std::time::Duration>,
}

impl Answer {
    pub fn json(code: u16, body: &serde_json::Value) -> Answer {
        Answer { code, content_type: "application/json", headers: Vec::new(), body: body.to_string().into_bytes(), hold_open: None }
    }

    pub fn text(code: u16, content_type: &'static str, text: String) -> Answer {
        Answer { code, content_type, headers: Vec::new(), body: text.into_bytes(), hold_open: None }
    }

    /// No answer at all: the connection closes, as when a network drops an answer that was on
    /// its way, after the server did what was asked.
    pub fn lost() -> Answer {
        Answer { code: 0, content_type: "", headers: Vec::new(), body: Vec::new(), hold_open: None }
    }
}

/// `text` percent-decoded (`+` a space), as forms and queries are.
pub(super) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    let length = headers.get("content-length").map_or(Some(0), |l| l.parse().ok())?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
    Some(Request { method, path: path.to_string(), query, headers, body })
}

fn answer(stream: &mut (impl Read + Write), handle: &(impl Fn(&Request) -> Answer + ?Sized)) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else { return };
    let stream = reader.into_inner();
    let answer = handle(&request);
    if answer.code == 0 {
        return;
    }
    let extra: String = answer.headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let length = if answer.hold_open.is_some() { String::new() } else { format!("Content-Length: {}\r\n", answer.body.len()) };
    let head = format!("HTTP/1.1 {} X\r\nContent-Type: {}\r\n{length}{extra}Connection: close\r\n\r\n", answer.code, answer.content_type);
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&answer.body)).and_then(|()| stream.flush());
    if let Some(hold) = answer.hold_open {
        std::thread::sleep(hold);
    }
}

/// Ends a stand-in's "machine" (a pod, an instance): the process group `child` leads, and
/// everything its command started.
pub(super) fn stop_group(child: Option<std::process::Child>) {
    if let Some(mut child) = child {
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
    }
}

/// Serves `handle` on a loopback port, over `tls` if given; returns the base URL.
pub(super) fn serve(tls: Option<Arc<rustls::ServerConfig>>, handle: Arc<dyn Fn(&Request) -> Answer + Send + Sync>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let (handle, tls) = (handle.clone(), tls.clone());
            std::thread::spawn(move || match tls.and_then(|config| rustls::ServerConnection::new(config).ok()) {
                Some(connection) => {
                    let mut stream = rustls::StreamOwned::new(connection, stream);
                    answer(&mut stream, &*handle);
                    stream.conn.send_close_notify();
                    let _ = stream.flush();
                }
                None => answer(&mut stream, &*handle),
            });
        }
    });
    url
}
