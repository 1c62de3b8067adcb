//! A tiny HTTPS server on 127.0.0.1 that stands in for kube-apiserver's TLS front door.
//!
//! It presents a given serving certificate and REQUIRES a client certificate
//! that chains to a given CA, like the API server's `--client-ca-file`. Every
//! request gets `200 OK` with a small JSON body. It records the subject of
//! each accepted client and every refused handshake, so a test can tell "the
//! server refused the client" from "the client gave up". It sends no list of
//! acceptable CAs, so a client presents whatever certificate it has and the
//! server's verification, not the client's choice, decides. [`get`] is the
//! matching mutual-TLS client, for servers (etcd's peer port) without a CLI.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// The JSON body every request receives.
pub const BODY: &str = r#"{"paths":["/api","/healthz"],"server":"kubepki-test-apiserver"}"#;

/// What the server saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Subject common names of clients whose certificate was accepted.
    pub clients: Vec<String>,
    /// Handshakes the server refused, as rustls describes them.
    pub refusals: Vec<String>,
}

pub struct TlsServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Seen {
    /// The accepted clients, one entry per run of connections from the same client
    /// (kubectl may open more than one connection per command).
    pub fn client_runs(&self) -> Vec<String> {
        let mut runs = self.clients.clone();
        runs.dedup();
        runs
    }
}

impl TlsServer {
    /// Serves `cert_pem` (leaf first, then any chain) with `key_pem`, trusting clients of `client_ca_pem`.
    pub fn start(cert_pem: &[u8], key_pem: &[u8], client_ca_pem: &[u8]) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .expect("serving certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem).expect("serving key PEM");
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(client_ca_pem) {
            roots
                .add(ca.expect("client CA PEM"))
                .expect("add client CA");
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .clear_root_hint_subjects()
                .build()
                .expect("client verifier");
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server certificate and key");
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let thread = {
            let stop = stop.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    serve(stream, config.clone(), &seen);
                }
            })
        };
        TlsServer {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().expect("seen lock").clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, seen: &Mutex<Seen>) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let Ok(connection) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(connection, stream);
    while tls.conn.is_handshaking() {
        if let Err(error) = tls.conn.complete_io(&mut tls.sock) {
            // A probe that connects and closes (our own wake-up) is not a refusal.
            if error.kind() != std::io::ErrorKind::UnexpectedEof {
                seen.lock()
                    .expect("seen lock")
                    .refusals
                    .push(error.to_string());
            }
            return;
        }
    }
    let client = tls
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| common_name(der.as_ref()))
        .unwrap_or_default();
    seen.lock().expect("seen lock").clients.push(client);

    // Read the request head (HTTP/1.1; kubectl sends no body for GET).
    let mut reader = BufReader::new(&mut tls);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tls.write_all(response.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
}

fn common_name(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, cert)| {
            cert.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// A client certificate and key, PEM.
pub struct ClientIdentity<'a> {
    pub cert_pem: &'a [u8],
    pub key_pem: &'a [u8],
}

/// `GET path` over mutual TLS to 127.0.0.1:`port`, trusting `ca_pem` for the server (checked
/// against the IP 127.0.0.1). Returns the raw HTTP response, or the TLS/IO error as text.
pub fn get(
    port: u16,
    ca_pem: &[u8],
    client: &ClientIdentity<'_>,
    path: &str,
) -> Result<String, String> {
    use std::io::Read;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(ca.expect("CA PEM")).expect("add CA");
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(client.cert_pem)
        .collect::<Result<_, _>>()
        .expect("client certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(client.key_pem).expect("client key PEM");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client certificate and key");
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(connection, socket);
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => Ok(String::from_utf8_lossy(&response).into_owned()),
        // Some servers close without close_notify after a complete response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
            Ok(String::from_utf8_lossy(&response).into_owned())
        }
        Err(e) => Err(e.to_string()),
    }
}
