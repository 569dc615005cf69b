//! A validating admission webhook that answers slowly for chosen objects, standing for a slow
//! webhook in a user's cluster: one request takes long while every other request is quick.
//!
//! It serves HTTPS on 127.0.0.1 with the plane's own serving certificate (its SANs include
//! 127.0.0.1) and is registered with the plane's CA as its `caBundle`. HTTP/1.1 is spoken by
//! hand: the API server sends one JSON `AdmissionReview` per request, with a `Content-Length`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::ControlPlane;

/// A running slow webhook, registered on one plane; dropping it stops the server (call
/// [`SlowWebhook::unregister`] first to remove the registration).
pub struct SlowWebhook {
    name: String,
    client: Client,
    server: JoinHandle<()>,
}

impl SlowWebhook {
    /// Serves a webhook that delays its answer by `delay` for objects whose name starts with
    /// `slow_prefix` and answers at once otherwise, and registers it on `plane` for creates
    /// and updates of `resource` in `group`, in the namespace `namespace` only.
    ///
    /// # Panics
    ///
    /// When the certificates cannot be read, or the server or the registration fails.
    pub async fn start(
        plane: &ControlPlane,
        name: &str,
        (group, resource): (&str, &str),
        namespace: &str,
        slow_prefix: &str,
        delay: Duration,
    ) -> SlowWebhook {
        let pki = plane.dir().expect("a started plane").join("pki");
        let acceptor = acceptor(&pki);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let slow_prefix = slow_prefix.to_owned();
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, slow_prefix) = (acceptor.clone(), slow_prefix.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, &slow_prefix, delay).await;
                    }
                });
            }
        });
        let client = plane.client().await.unwrap();
        let ca = std::fs::read(pki.join("ca.crt")).unwrap();
        let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": { "name": name },
            "webhooks": [{
                "name": format!("{name}.test.sync.dev"),
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{port}/validate"),
                    "caBundle": k8s_openapi::ByteString(ca),
                },
                "rules": [{
                    "apiGroups": [group], "apiVersions": ["*"], "resources": [resource],
                    "operations": ["CREATE", "UPDATE"], "scope": "Namespaced",
                }],
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": namespace } },
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 30,
            }],
        }))
        .unwrap();
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &config)
            .await
            .unwrap();
        SlowWebhook {
            name: name.to_owned(),
            client,
            server,
        }
    }

    /// Removes the registration and stops the server.
    ///
    /// # Panics
    ///
    /// When the registration cannot be deleted.
    pub async fn unregister(self) {
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await
            .unwrap();
    }
}

impl Drop for SlowWebhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn acceptor(pki: &Path) -> TlsAcceptor {
    let certs = CertificateDer::pem_file_iter(pki.join("apiserver.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.join("apiserver.key")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Answers the requests of one connection, each after `delay` when its object's name starts
/// with `slow_prefix`.
async fn serve(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    slow_prefix: &str,
    delay: Duration,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let request = &review["request"];
        if request["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(slow_prefix))
        {
            tokio::time::sleep(delay).await;
        }
        let answer = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": { "uid": request["uid"], "allowed": true },
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        stream.get_mut().write_all(head.as_bytes()).await?;
        stream.get_mut().write_all(answer.as_bytes()).await?;
        stream.get_mut().flush().await?;
    }
}
