//! Where another gantry daemon (or a seed system's server) is served: `http://HOST[:PORT]` or
//! `https://…`, with nothing after but a `/` — a federation master, a pulled slave, the CLI's
//! `--server`.

/// A base URL, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    pub secure: bool,
    /// Without the brackets of an IPv6 address.
    pub host: String,
    pub port: Option<u16>,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let wrong = || format!("'{url}' is not http://HOST:PORT or https://HOST:PORT");
        let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => return Err(wrong()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
            return Err(wrong());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(wrong)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = port.map(|p| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(wrong)).transpose()?;
        if host.is_empty() {
            return Err(wrong());
        }
        Ok(BaseUrl { secure, host: host.to_string(), port })
    }

    /// `host:port`, with the scheme's port when none is given.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{host}:{}", self.port.unwrap_or(if self.secure { 443 } else { 80 }))
    }

    /// `http://authority` or `https://authority`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.secure { "https" } else { "http" }, self.authority())
    }

    /// This machine: a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_read_with_their_host_and_port() {
        let url = BaseUrl::parse("https://[fe80::2]:7443/").expect("valid");
        assert_eq!((url.secure, url.host.as_str(), url.port, url.authority()), (true, "fe80::2", Some(7443), "[fe80::2]:7443".to_string()));
        assert_eq!(BaseUrl::parse("http://gpu1.lab").expect("valid").authority(), "gpu1.lab:80");
        assert_eq!(BaseUrl::parse("https://gpu1.lab").expect("valid").authority(), "gpu1.lab:443");
        assert_eq!(BaseUrl { secure: false, host: "fe80::1".into(), port: Some(5001) }.url(), "http://[fe80::1]:5001");
        for bad in ["gpu1:7070", "ftp://h", "http://", "http://h:1/api", "http://u@h", "http://h:0", "http://h:port", "http://[::1"] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        for (url, loopback) in [("http://127.0.0.1:7070", true), ("http://localhost:1/", true), ("http://[::1]:7070", true), ("http://10.0.0.2:7070", false), ("http://gpu1.lab:7070", false)] {
            assert_eq!(BaseUrl::parse(url).expect("valid").is_loopback(), loopback, "{url}");
        }
    }
}
