//! The certificates of one plane, made with the `openssl` command.
//!
//! A crate such as `rcgen` would avoid the external command, but it would also add a second
//! crypto stack to compile on every test build; `openssl` is present wherever the control-plane
//! binaries can be built, and a plane needs only a handful of certificates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result, io};

/// The files of a plane's PKI, all in one folder.
#[derive(Debug)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    ca_key: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) admin_cert: PathBuf,
    pub(crate) admin_key: PathBuf,
    pub(crate) sa_public: PathBuf,
    pub(crate) sa_private: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// Makes the CA, the apiserver's serving certificate, the admin client certificate and the
    /// service-account key pair in `dir`.
    pub(crate) fn create(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let pki = Pki {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            sa_public: dir.join("sa.pub"),
            sa_private: dir.join("sa.key"),
            dir: dir.to_owned(),
        };
        openssl("make the CA", |c| {
            c.args(["req", "-x509", "-nodes", "-days", "3650"])
                .args(EC_KEY)
                .args(["-subj", "/CN=sync-test-ca"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&pki.ca_key)
                .arg("-out")
                .arg(&pki.ca_cert)
        })?;
        // rustls checks the server name against the SANs only, never the CN.
        pki.issue(
            "/CN=kube-apiserver",
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n",
            &pki.serving_cert,
            &pki.serving_key,
        )?;
        pki.issue_client(
            "admin",
            &["system:masters"],
            &pki.admin_cert,
            &pki.admin_key,
        )?;
        openssl("make the service-account key", |c| {
            c.args(["genrsa", "-out"]).arg(&pki.sa_private).arg("2048")
        })?;
        openssl("derive the service-account public key", |c| {
            c.args(["rsa", "-pubout", "-in"])
                .arg(&pki.sa_private)
                .arg("-out")
                .arg(&pki.sa_public)
        })?;
        Ok(pki)
    }

    /// Issues a client certificate: the apiserver takes the CN as the user name and every O as
    /// a group.
    pub(crate) fn issue_client(
        &self,
        user: &str,
        groups: &[&str],
        cert: &Path,
        key: &Path,
    ) -> Result<()> {
        let mut subject = format!("/CN={}", escape(user));
        for group in groups {
            subject.push_str("/O=");
            subject.push_str(&escape(group));
        }
        self.issue(&subject, "extendedKeyUsage=clientAuth\n", cert, key)
    }

    fn issue(&self, subject: &str, extensions: &str, cert: &Path, key: &Path) -> Result<()> {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let csr = cert.with_extension("csr");
        let ext = cert.with_extension("ext");
        let ext_text = format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n{extensions}"
        );
        std::fs::write(&ext, ext_text).map_err(io(format!("write {}", ext.display())))?;
        openssl(&format!("make a key and request for {subject}"), |c| {
            c.args(["req", "-new", "-nodes"])
                .args(EC_KEY)
                .args(["-subj", subject])
                .arg("-keyout")
                .arg(key)
                .arg("-out")
                .arg(&csr)
        })?;
        openssl(&format!("sign the certificate for {subject}"), |c| {
            c.args(["x509", "-req", "-days", "3650", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.ca_cert)
                .arg("-CAkey")
                .arg(&self.ca_key)
                .arg("-set_serial")
                .arg(format!("0x{nanos:x}{n:04x}"))
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(cert)
        })?;
        let _ = std::fs::remove_file(&csr);
        let _ = std::fs::remove_file(&ext);
        Ok(())
    }

    /// The folder that holds the files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// P-256 keys: quick to make, and accepted by Go's TLS and by rustls.
const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// Escapes the characters that `openssl -subj` treats specially.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if matches!(ch, '/' | '\\' | '+' | '=') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn openssl(what: &str, args: impl FnOnce(&mut Command) -> &mut Command) -> Result<()> {
    let mut command = Command::new("openssl");
    args(&mut command);
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Openssl {
            what: what.to_owned(),
            stderr: format!("cannot run openssl: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Openssl {
            what: what.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
