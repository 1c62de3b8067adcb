//! From inventory to plan: the rules of which certificate exists, with which names, for whom.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::layout::{
    CERT_MODE, CLUSTER_DIR, KEY_MODE, Unit, authority_cert_file, authority_key_file,
    authority_key_name, install_name, node_dir, owner_of, trust_bundle_name, units_of,
};
use super::{
    Authority, AuthorityPlan, CertificatePlan, InstallFile, KubeconfigPlan, NodePlan, Part, Plan,
    Profile, San, SecretKind, SecretPlan, Usage,
};
use crate::inventory::{Inventory, Node};

/// The complete certificate plan of a validated inventory. Pure: no I/O, no randomness.
pub fn plan(inventory: &Inventory) -> Plan {
    let spec = &inventory.spec;
    let control_planes: Vec<String> = inventory.control_planes().map(|n| n.name.clone()).collect();

    let authorities = Authority::ALL
        .into_iter()
        .map(|authority| AuthorityPlan {
            authority,
            common_name: authority.common_name().to_string(),
            cert_file: authority_cert_file(authority),
            key_file: authority_key_file(authority),
            key_holders: if authority == Authority::Kubernetes
                && spec.pki.controller_manager_signs_csrs
            {
                control_planes.clone()
            } else {
                Vec::new()
            },
        })
        .collect();

    let mut certificates = Vec::new();
    for node in inventory.nodes() {
        if node.is_control_plane() {
            for profile in [
                Profile::ApiServer,
                Profile::ApiServerKubeletClient,
                Profile::ApiServerEtcdClient,
                Profile::FrontProxyClient,
                Profile::ControllerManager,
                Profile::Scheduler,
            ] {
                certificates.push(node_certificate(inventory, node, profile));
            }
        }
        if node.is_etcd() {
            for profile in [
                Profile::EtcdServer,
                Profile::EtcdPeer,
                Profile::EtcdHealthcheckClient,
            ] {
                certificates.push(node_certificate(inventory, node, profile));
            }
        }
        for profile in [
            Profile::KubeletClient,
            Profile::KubeletServing,
            Profile::KubeProxy,
            Profile::CalicoCni,
        ] {
            certificates.push(node_certificate(inventory, node, profile));
        }
    }
    for profile in [Profile::Admin, Profile::SuperAdmin] {
        let (common_name, organizations) = subject(profile, "");
        certificates.push(CertificatePlan {
            id: format!("{CLUSTER_DIR}/{}", profile.name()),
            profile,
            common_name,
            organizations,
            usages: vec![Usage::ClientAuth],
            sans: Vec::new(),
            issuer: Authority::Kubernetes,
            node: None,
            key_holders: control_planes.clone(),
            cert_file: format!("{CLUSTER_DIR}/{}.crt", profile.name()),
            key_file: format!("{CLUSTER_DIR}/{}.key.age", profile.name()),
        });
    }

    let secrets = vec![
        SecretPlan {
            id: "service-account".into(),
            kind: SecretKind::ServiceAccount,
            key_file: format!("{CLUSTER_DIR}/service-account.key.age"),
            public_file: Some(format!("{CLUSTER_DIR}/service-account.pub")),
            key_holders: control_planes.clone(),
        },
        SecretPlan {
            id: "encryption-config".into(),
            kind: SecretKind::EncryptionConfig,
            key_file: format!("{CLUSTER_DIR}/encryption-config.yaml.age"),
            public_file: None,
            key_holders: control_planes.clone(),
        },
    ];

    let mut plan = Plan {
        cluster: spec.cluster.name.clone(),
        algorithm: spec.pki.algorithm,
        ca_validity_days: spec.pki.ca_validity_days,
        leaf_validity_days: spec.pki.leaf_validity_days,
        authorities,
        certificates,
        secrets,
        nodes: Vec::new(),
    };
    let server = inventory.api_server_url();
    // Index once: scanning every certificate for every node is quadratic in the node count.
    let mut held: BTreeMap<&str, Vec<&CertificatePlan>> = BTreeMap::new();
    for cert in &plan.certificates {
        for holder in cert.node.iter().chain(&cert.key_holders) {
            let list = held.entry(holder.as_str()).or_default();
            if !list.iter().any(|c| std::ptr::eq(*c, cert)) {
                list.push(cert);
            }
        }
    }
    let nodes = inventory
        .nodes()
        .iter()
        .map(|node| {
            let certificates = held.get(node.name.as_str()).map_or(&[][..], Vec::as_slice);
            node_plan(&plan, certificates, node, &server)
        })
        .collect();
    plan.nodes = nodes;
    plan
}

fn node_certificate(inventory: &Inventory, node: &Node, profile: Profile) -> CertificatePlan {
    let (common_name, organizations) = subject(profile, &node.name);
    let dir = node_dir(&node.name);
    CertificatePlan {
        id: format!("{dir}/{}", profile.name()),
        profile,
        common_name,
        organizations,
        usages: usages(profile),
        sans: sans(inventory, node, profile),
        issuer: issuer(profile),
        node: Some(node.name.clone()),
        key_holders: vec![node.name.clone()],
        cert_file: format!("{dir}/{}.crt", profile.name()),
        key_file: format!("{dir}/{}.key.age", profile.name()),
    }
}

/// CN and O: Kubernetes maps these to the user and groups it authorises.
fn subject(profile: Profile, node: &str) -> (String, Vec<String>) {
    let (cn, o): (String, &[&str]) = match profile {
        Profile::ApiServer => ("kube-apiserver".into(), &[]),
        // No O: bound to system:kubelet-api-admin by a ClusterRoleBinding, as kubeadm now does.
        Profile::ApiServerKubeletClient => ("kube-apiserver-kubelet-client".into(), &[]),
        Profile::ApiServerEtcdClient => ("kube-apiserver-etcd-client".into(), &[]),
        Profile::FrontProxyClient => ("front-proxy-client".into(), &[]),
        Profile::ControllerManager => ("system:kube-controller-manager".into(), &[]),
        Profile::Scheduler => ("system:kube-scheduler".into(), &[]),
        Profile::EtcdServer | Profile::EtcdPeer => (node.into(), &[]),
        Profile::EtcdHealthcheckClient => ("kube-etcd-healthcheck-client".into(), &[]),
        Profile::KubeletClient => (format!("system:node:{node}"), &["system:nodes"]),
        Profile::KubeletServing => (node.into(), &[]),
        Profile::KubeProxy => ("system:kube-proxy".into(), &[]),
        Profile::CalicoCni => ("calico-cni".into(), &[]),
        // Not system:masters, so RBAC can revoke it.
        Profile::Admin => ("kubernetes-admin".into(), &["kubeadm:cluster-admins"]),
        Profile::SuperAdmin => ("kubernetes-super-admin".into(), &["system:masters"]),
    };
    (cn, o.iter().map(|s| s.to_string()).collect())
}

fn usages(profile: Profile) -> Vec<Usage> {
    match profile {
        Profile::ApiServer | Profile::KubeletServing => vec![Usage::ServerAuth],
        Profile::EtcdServer | Profile::EtcdPeer => vec![Usage::ServerAuth, Usage::ClientAuth],
        _ => vec![Usage::ClientAuth],
    }
}

fn issuer(profile: Profile) -> Authority {
    match profile {
        Profile::ApiServerEtcdClient
        | Profile::EtcdServer
        | Profile::EtcdPeer
        | Profile::EtcdHealthcheckClient => Authority::Etcd,
        Profile::FrontProxyClient => Authority::FrontProxy,
        _ => Authority::Kubernetes,
    }
}

fn sans(inventory: &Inventory, node: &Node, profile: Profile) -> Vec<San> {
    let spec = &inventory.spec;
    let mut out = Sans::default();
    match profile {
        Profile::ApiServer => {
            out.dns(&node.name);
            for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc"] {
                out.dns(name);
            }
            out.dns(&format!("kubernetes.default.svc.{}", spec.cluster.domain));
            for cidr in &spec.network.service_cidrs {
                out.ip(first_host(cidr));
            }
            for endpoint in &spec.api.endpoints {
                out.host(endpoint);
            }
            out.node(node);
            out.ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            out.ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        Profile::EtcdServer | Profile::EtcdPeer => {
            out.dns(&node.name);
            out.dns("localhost");
            out.ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            out.ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
            out.node(node);
        }
        Profile::KubeletServing => {
            out.dns(&node.name);
            out.node(node);
        }
        _ => {}
    }
    out.0
}

/// Collects SANs in order without duplicates.
#[derive(Default)]
struct Sans(Vec<San>);

impl Sans {
    fn push(&mut self, san: San) {
        if !self.0.contains(&san) {
            self.0.push(san);
        }
    }
    fn dns(&mut self, name: &str) {
        self.push(San::Dns(name.to_string()));
    }
    fn ip(&mut self, ip: IpAddr) {
        self.push(San::Ip(ip));
    }
    fn host(&mut self, host: &str) {
        match host.parse::<IpAddr>() {
            Ok(ip) => self.ip(ip),
            Err(_) => self.dns(host),
        }
    }
    /// The node's DNS names and every address it has.
    fn node(&mut self, node: &Node) {
        for name in &node.names {
            self.dns(name);
        }
        for ip in node.addresses.all() {
            self.ip(ip);
        }
    }
}

/// The first usable address of a service CIDR: the `kubernetes` Service's ClusterIP.
pub fn first_host(cidr: &IpNet) -> IpAddr {
    match cidr.network() {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_add(1))),
    }
}

/// `certificates` are the ones this node holds a key of, in plan order.
fn node_plan(
    plan: &Plan,
    certificates: &[&CertificatePlan],
    node: &Node,
    server: &str,
) -> NodePlan {
    let mut files = Vec::new();
    let mut kubeconfigs = Vec::new();
    let cp = node.is_control_plane();
    let etcd = node.is_etcd();

    let mut k8s_units = vec![Unit::Kubelet, Unit::KubeProxy];
    if cp {
        k8s_units.splice(
            0..0,
            [
                Unit::KubeApiserver,
                Unit::KubeControllerManager,
                Unit::KubeScheduler,
            ],
        );
    }
    for authority in &plan.authorities {
        let units: Vec<Unit> = match authority.authority {
            Authority::Kubernetes => k8s_units.clone(),
            Authority::Etcd if cp || etcd => {
                let mut u = Vec::new();
                if cp {
                    u.push(Unit::KubeApiserver);
                }
                if etcd {
                    u.push(Unit::Etcd);
                }
                u
            }
            Authority::FrontProxy if cp => vec![Unit::KubeApiserver],
            _ => continue,
        };
        files.push(InstallFile {
            material: format!("{}-ca", authority.authority.name()),
            part: Part::TrustBundle,
            source: authority.cert_file.clone(),
            install: trust_bundle_name(authority.authority),
            owner: "root".into(),
            group: "root".into(),
            mode: CERT_MODE,
            units: services(&units),
        });
        if authority.key_holders.contains(&node.name) {
            files.push(InstallFile {
                material: format!("{}-ca", authority.authority.name()),
                part: Part::Secret,
                source: authority.key_file.clone(),
                install: authority_key_name(authority.authority),
                owner: Unit::KubeControllerManager.user().into(),
                group: Unit::KubeControllerManager.user().into(),
                mode: KEY_MODE,
                units: services(&[Unit::KubeControllerManager]),
            });
        }
    }

    for cert in certificates {
        let owner = owner_of(cert.profile);
        let units = services(units_of(cert.profile));
        let material = cert.profile.name();
        files.push(InstallFile {
            material: material.into(),
            part: Part::Certificate,
            source: cert.cert_file.clone(),
            install: install_name(material, "crt"),
            owner: "root".into(),
            group: "root".into(),
            mode: CERT_MODE,
            units: units.clone(),
        });
        files.push(InstallFile {
            material: material.into(),
            part: Part::Secret,
            source: cert.key_file.clone(),
            install: install_name(material, "key"),
            owner: owner.into(),
            group: owner.into(),
            mode: KEY_MODE,
            units,
        });
    }

    for secret in plan
        .secrets
        .iter()
        .filter(|s| s.key_holders.contains(&node.name))
    {
        let (key_name, units) = match secret.kind {
            SecretKind::ServiceAccount => (
                "sa.key".to_string(),
                vec![Unit::KubeApiserver, Unit::KubeControllerManager],
            ),
            SecretKind::EncryptionConfig => (
                "encryption-config.yaml".to_string(),
                vec![Unit::KubeApiserver],
            ),
        };
        files.push(InstallFile {
            material: secret.id.clone(),
            part: Part::Secret,
            source: secret.key_file.clone(),
            install: key_name,
            owner: "kubernetes".into(),
            group: "kubernetes".into(),
            mode: KEY_MODE,
            units: services(&units),
        });
        if let Some(public) = &secret.public_file {
            files.push(InstallFile {
                material: secret.id.clone(),
                part: Part::PublicKey,
                source: public.clone(),
                install: "sa.pub".into(),
                owner: "root".into(),
                group: "root".into(),
                mode: CERT_MODE,
                units: services(&[Unit::KubeApiserver]),
            });
        }
    }

    let mut kubeconfig = |profile: Profile, units: &[Unit]| {
        let Some(cert) = certificates.iter().find(|c| c.profile == profile) else {
            return;
        };
        let name = match profile {
            Profile::KubeletClient => "kubelet",
            other => other.name(),
        };
        kubeconfigs.push(KubeconfigPlan {
            name: name.into(),
            install: format!("{name}.kubeconfig"),
            user: cert.common_name.clone(),
            server: server.to_string(),
            ca: trust_bundle_name(Authority::Kubernetes),
            cert: install_name(profile.name(), "crt"),
            key: install_name(profile.name(), "key"),
            owner: owner_of(profile).into(),
            group: owner_of(profile).into(),
            // Holds no secret, only paths; readable by its service.
            mode: 0o440,
            units: services(units),
        });
    };
    kubeconfig(Profile::KubeletClient, &[Unit::Kubelet]);
    kubeconfig(Profile::KubeProxy, &[Unit::KubeProxy]);
    kubeconfig(Profile::CalicoCni, &[]);
    if cp {
        kubeconfig(Profile::ControllerManager, &[Unit::KubeControllerManager]);
        kubeconfig(Profile::Scheduler, &[Unit::KubeScheduler]);
        kubeconfig(Profile::Admin, &[]);
        kubeconfig(Profile::SuperAdmin, &[]);
    }

    NodePlan {
        name: node.name.clone(),
        roles: node.roles.clone(),
        files,
        kubeconfigs,
    }
}

fn services(units: &[Unit]) -> Vec<String> {
    units.iter().map(|u| u.service().to_string()).collect()
}
