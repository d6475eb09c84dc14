//! TLS certificates for tests that cross HTTPS: the daemon's listener, a federation, a
//! Kubernetes API server with a CA of its own.

/// A CA of the lab's own and a certificate it signed for 127.0.0.1 and localhost, made with the
/// openssl command (tests/deps.sh installs it).
pub struct LabCa {
    _dir: tempfile::TempDir,
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl LabCa {
    pub fn new() -> LabCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write("ca.cnf", "[req]\ndistinguished_name = dn\nx509_extensions = ca\nprompt = no\n[dn]\nCN = gantry test CA\n[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n");
        write("leaf.cnf", "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = 127.0.0.1\n");
        write("leaf.ext", "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier = keyid\n");
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap_or_else(|e| panic!("openssl: {e}; install it (apt-get install -y openssl, as tests/deps.sh does)"));
            assert!(out.status.success(), "openssl {args:?}: {}", crate::stderr(&out));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(&[&["req", "-x509", "-config", "ca.cnf"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]].concat());
        openssl(&[&["req", "-new", "-config", "leaf.cnf"][..], &ec, &["-keyout", "key.pem", "-out", "leaf.csr"]].concat());
        openssl(&["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "leaf.ext", "-out", "cert.pem"]);
        let path = |name: &str| dir.path().join(name);
        LabCa { ca: path("ca.pem"), cert: path("cert.pem"), key: path("key.pem"), _dir: dir }
    }

    /// `[server]` serving HTTPS with this certificate.
    pub fn server_section(&self) -> String {
        format!("[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n", self.cert.display(), self.key.display())
    }
}
