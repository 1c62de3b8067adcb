//! Kubeconfigs: the YAML files through which kubelet, kube-proxy, the control-plane components
//! and operators find the API server and prove who they are.
//!
//! Two shapes are rendered from the same structs, named after the kubeconfig
//! schema (`Config`, `NamedCluster`, `NamedAuthInfo`, `NamedContext`):
//! a *node-local* kubeconfig references the installed trust bundle,
//! certificate and key by path and so holds no secret (the activate step
//! writes it next to the files it names); a *self-contained* kubeconfig embeds
//! them as base64 `*-data` for an operator's laptop, and is therefore returned
//! in a zeroizing buffer. Cluster and context names come from the inventory's
//! cluster name, the user name from the certificate's common name.
//!
//! Rendering is pure: it neither reads nor writes files, nor decrypts keys.
//! [`operator`] fetches and unseals the operator's material from the bundle
//! for `kubepki kubeconfig`; activation places node-local ones on disk.

pub mod operator;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::plan::KubeconfigPlan;

/// A kubeconfig file (`apiVersion: v1`, `kind: Config`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    pub kind: &'static str,
    pub clusters: Vec<NamedCluster>,
    pub users: Vec<NamedAuthInfo>,
    pub contexts: Vec<NamedContext>,
    pub current_context: String,
}

/// One API server and how to trust it.
#[derive(Debug, Serialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
}

/// One client identity.
#[derive(Debug, Serialize)]
pub struct NamedAuthInfo {
    pub name: String,
    pub user: AuthInfo,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<EmbeddedKey>,
}

/// A base64-encoded private key inside a kubeconfig; wiped from memory when dropped.
pub struct EmbeddedKey(Zeroizing<String>);

impl EmbeddedKey {
    fn encode(key_pem: &[u8]) -> Self {
        EmbeddedKey(Zeroizing::new(BASE64.encode(key_pem)))
    }
}

impl std::fmt::Debug for EmbeddedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedKey(<redacted>)")
    }
}

impl Serialize for EmbeddedKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Which cluster and user a context selects.
#[derive(Debug, Serialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Serialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
}

impl Config {
    /// A config with one cluster, one user and one context `<user>@<cluster>` selecting them.
    pub fn single(cluster_name: &str, cluster: Cluster, user_name: &str, user: AuthInfo) -> Self {
        let context = context_name(user_name, cluster_name);
        Config {
            api_version: "v1",
            kind: "Config",
            clusters: vec![NamedCluster {
                name: cluster_name.to_string(),
                cluster,
            }],
            users: vec![NamedAuthInfo {
                name: user_name.to_string(),
                user,
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: Context {
                    cluster: cluster_name.to_string(),
                    user: user_name.to_string(),
                },
            }],
            current_context: context,
        }
    }

    /// The YAML text, zeroized on drop since a self-contained config holds a key.
    pub fn to_yaml(&self) -> Zeroizing<String> {
        // serde_yaml fails only on non-string map keys or a failing custom `Serialize`;
        // a `Config` has neither, whatever the user's input.
        Zeroizing::new(
            serde_yaml::to_string(self).expect("a kubeconfig made of strings always serialises"),
        )
    }
}

/// The context name, as kubeadm spells it: `kubernetes-admin@ducksnest`.
pub fn context_name(user: &str, cluster: &str) -> String {
    format!("{user}@{cluster}")
}

/// The kubeconfig a node's service reads: paths to `<dir>/<ca>`, `<dir>/<cert>`, `<dir>/<key>`.
///
/// `dir` is where activation installs the material (e.g. `/run/kubepki/current`).
/// A path that is not UTF-8 cannot be written in YAML and is rendered lossily.
pub fn render_node_local(kubeconfig: &KubeconfigPlan, cluster_name: &str, dir: &Path) -> String {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let config = Config::single(
        cluster_name,
        Cluster {
            server: kubeconfig.server.clone(),
            certificate_authority: Some(path(&kubeconfig.ca)),
            certificate_authority_data: None,
        },
        &kubeconfig.user,
        AuthInfo {
            client_certificate: Some(path(&kubeconfig.cert)),
            client_key: Some(path(&kubeconfig.key)),
            client_certificate_data: None,
            client_key_data: None,
        },
    );
    // Holds no secret: only paths.
    config.to_yaml().to_string()
}

/// The material and names of a kubeconfig that carries its own credentials.
pub struct SelfContained<'a> {
    pub cluster_name: &'a str,
    pub server: &'a str,
    /// The user name, conventionally the certificate's common name.
    pub user: &'a str,
    /// PEM trust bundle of the Kubernetes CA (every certificate in it is trusted).
    pub ca_pem: &'a [u8],
    pub cert_pem: &'a [u8],
    pub key_pem: &'a [u8],
}

/// A kubeconfig with the CA, certificate and key embedded; it contains the private key.
pub fn render_self_contained(parts: &SelfContained<'_>) -> Zeroizing<String> {
    Config::single(
        parts.cluster_name,
        Cluster {
            server: parts.server.to_string(),
            certificate_authority: None,
            certificate_authority_data: Some(BASE64.encode(parts.ca_pem)),
        },
        parts.user,
        AuthInfo {
            client_certificate: None,
            client_key: None,
            client_certificate_data: Some(BASE64.encode(parts.cert_pem)),
            client_key_data: Some(EmbeddedKey::encode(parts.key_pem)),
        },
    )
    .to_yaml()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubelet_plan() -> KubeconfigPlan {
        KubeconfigPlan {
            name: "kubelet".into(),
            install: "kubelet.kubeconfig".into(),
            user: "system:node:laptop-firebat".into(),
            server: "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443".into(),
            ca: "ca.crt".into(),
            cert: "kubelet-client.crt".into(),
            key: "kubelet-client.key".into(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o440,
            units: vec!["kubelet.service".into()],
        }
    }

    #[test]
    fn node_local_kubeconfig_names_installed_files_and_holds_no_data() {
        let text = render_node_local(
            &kubelet_plan(),
            "ducksnest",
            Path::new("/run/kubepki/current"),
        );
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Config");
        assert_eq!(
            value["current-context"],
            "system:node:laptop-firebat@ducksnest"
        );
        let cluster = &value["clusters"][0];
        assert_eq!(cluster["name"], "ducksnest");
        assert_eq!(
            cluster["cluster"]["server"],
            "https://ec2-controlplane.tailnet-ducksnest.ts.net:6443"
        );
        assert_eq!(
            cluster["cluster"]["certificate-authority"],
            "/run/kubepki/current/ca.crt"
        );
        let user = &value["users"][0];
        assert_eq!(user["name"], "system:node:laptop-firebat");
        assert_eq!(
            user["user"]["client-certificate"],
            "/run/kubepki/current/kubelet-client.crt"
        );
        assert_eq!(
            user["user"]["client-key"],
            "/run/kubepki/current/kubelet-client.key"
        );
        let context = &value["contexts"][0];
        assert_eq!(context["name"], "system:node:laptop-firebat@ducksnest");
        assert_eq!(context["context"]["cluster"], "ducksnest");
        assert_eq!(context["context"]["user"], "system:node:laptop-firebat");
        assert!(!text.contains("-data"), "{text}");
    }

    #[test]
    fn self_contained_kubeconfig_embeds_base64_material() {
        let text = render_self_contained(&SelfContained {
            cluster_name: "ducksnest",
            server: "https://203.0.113.7:6443",
            user: "kubernetes-admin",
            ca_pem: b"CA PEM",
            cert_pem: b"CERT PEM",
            key_pem: b"KEY PEM",
        });
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let data = |v: &serde_yaml::Value| BASE64.decode(v.as_str().unwrap()).unwrap();
        let cluster = &value["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://203.0.113.7:6443");
        assert_eq!(data(&cluster["certificate-authority-data"]), b"CA PEM");
        assert!(cluster.get("certificate-authority").is_none());
        let user = &value["users"][0]["user"];
        assert_eq!(data(&user["client-certificate-data"]), b"CERT PEM");
        assert_eq!(data(&user["client-key-data"]), b"KEY PEM");
        assert!(user.get("client-key").is_none());
        assert_eq!(value["current-context"], "kubernetes-admin@ducksnest");
    }

    #[test]
    fn embedded_key_is_redacted_in_debug_output() {
        let key = EmbeddedKey::encode(b"secret");
        assert_eq!(format!("{key:?}"), "EmbeddedKey(<redacted>)");
    }
}
