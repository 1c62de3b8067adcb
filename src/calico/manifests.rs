//! The cluster-specific Calico resources, built from the inventory as typed values.
//!
//! Calico runs with the Kubernetes datastore and no operator: RBAC for
//! calico-node, the CNI plugin (the `calico-cni` user of kubepki's client
//! certificate) and kube-controllers; the `calico-config` ConfigMap; the
//! calico-node DaemonSet (VXLAN backend, no BIRD, no CNI install since NixOS
//! provides the binaries and the conflist); the kube-controllers Deployment;
//! the IP pools; and FelixConfiguration `default`. Every MTU field gets the
//! one derived number ([`super::mtu`]). RBAC rules follow Calico 3.30's
//! `calico-vxlan.yaml`, minus what a token-minting calico-node needs.
//!
//! The CRDs are not built here: the NixOS module applies the release's own
//! `crds.yaml`, pinned by hash. Nothing here writes files ([`super::render`] does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::CalicoError;
use super::cni::{self, ConfList, ConfListInputs};
use super::lint::parse_mark_mask;
use super::mtu::{self, Encapsulation, Family, MtuDerivation};
use super::resources::*;
use crate::inventory::{
    CalicoBackend, CalicoDataplane, EncapsulationMode, Inventory, IptablesBackend,
};
use crate::plan;

/// Felix's `featureDetectOverride`: `--random-fully` masquerade breaks Tailscale's direct connections.
pub const FEATURE_DETECT_OVERRIDE: &str = "SNATFullyRandom=false,MASQFullyRandom=false";
/// Calico's default IPv6 block size (a /122 per node block).
pub const IPV6_BLOCK_SIZE: u8 = 122;
pub const IPV4_POOL_NAME: &str = "default-ipv4-ippool";
pub const IPV6_POOL_NAME: &str = "default-ipv6-ippool";
/// The name of the plan's kubeconfig for the CNI plugin.
pub const CALICO_CNI_KUBECONFIG: &str = "calico-cni";

const CALICO_API: &str = "crd.projectcalico.org/v1";
const RBAC_API: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Choices the inventory does not make.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Activation's `current` directory on the nodes.
    pub material_dir: PathBuf,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            material_dir: crate::activate::default_material_dir(),
        }
    }
}

/// Every resource kubepki renders for Calico, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct CalicoResources {
    pub service_accounts: Vec<ServiceAccount>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub config: ConfigMap,
    pub felix_configuration: FelixConfiguration,
    pub ip_pools: Vec<IpPool>,
    pub calico_node: DaemonSet,
    pub kube_controllers: Deployment,
    pub conflist: ConfList,
    /// How the MTU in all of the above was derived.
    pub mtu: MtuDerivation,
}

/// Builds every resource from the inventory. Pure: no files, no cluster.
pub fn resources(
    inventory: &Inventory,
    options: &RenderOptions,
) -> Result<CalicoResources, CalicoError> {
    let spec = &inventory.spec;
    let calico = &spec.calico;
    let mtu = mtu::derive(spec, Family::Ipv4);
    let mtu_v6 = mtu::derive(spec, Family::Ipv6);
    let pod_mtu = mtu::cluster_pod_mtu(spec);
    let mark_mask =
        parse_mark_mask(&calico.iptables_mark_mask).ok_or_else(|| CalicoError::MarkMask {
            value: calico.iptables_mark_mask.clone(),
        })?;
    let kubeconfig = cni_kubeconfig(inventory, &options.material_dir)?;

    let ipv4_cidr = spec
        .network
        .pod_cidrs
        .iter()
        .find(|c| matches!(c, IpNet::V4(_)));
    let ipv6_cidr = spec
        .network
        .pod_cidrs
        .iter()
        .find(|c| matches!(c, IpNet::V6(_)));
    // IPv6 VXLAN needs an IPv6 MTU of at least 1280; otherwise the pool stays unencapsulated.
    let ipv6_vxlan = ipv6_cidr.is_some() && mtu::ipv6_vxlan_possible(spec);
    let ipv6_mode = if ipv6_vxlan {
        calico.vxlan_mode
    } else {
        EncapsulationMode::Never
    };
    let ipv6_mtu =
        ipv6_vxlan.then(|| mtu::derive(spec, Family::Ipv6).tunnel_mtu(Encapsulation::Vxlan));

    let mut ip_pools = Vec::new();
    if let Some(cidr) = ipv4_cidr {
        ip_pools.push(ip_pool(
            IPV4_POOL_NAME,
            cidr,
            calico.block_size,
            calico.vxlan_mode,
            calico.ipip_mode,
            calico.nat_outgoing,
        ));
    }
    if let Some(cidr) = ipv6_cidr {
        ip_pools.push(ip_pool(
            IPV6_POOL_NAME,
            cidr,
            IPV6_BLOCK_SIZE,
            ipv6_mode,
            EncapsulationMode::Never,
            calico.nat_outgoing,
        ));
    }

    let conflist = cni::conflist(&ConfListInputs {
        mtu: pod_mtu,
        kubeconfig: &kubeconfig.path,
        ipv4_pool: ipv4_cidr.map(|c| c.to_string()),
        ipv6_pool: ipv6_cidr.map(|c| c.to_string()),
    });
    let conflist_json = serde_json::to_string_pretty(&conflist).map_err(CalicoError::Json)?;

    let mut config_data = BTreeMap::new();
    config_data.insert("calico_backend".into(), calico.backend.name().into());
    config_data.insert("veth_mtu".into(), pod_mtu.to_string());
    config_data.insert("typha_service_name".into(), "none".into());
    config_data.insert("cni_network_config".into(), conflist_json);

    let nftables_mode = match calico.dataplane {
        CalicoDataplane::Iptables => "Disabled",
        CalicoDataplane::Nftables => "Enabled",
    };
    let vxlan_mtu = mtu.tunnel_mtu(Encapsulation::Vxlan);
    let ipip_mtu = calico
        .ipip_mode
        .is_on()
        .then(|| mtu.tunnel_mtu(Encapsulation::IpInIp));
    let wireguard_mtu = calico
        .wireguard
        .then(|| mtu.tunnel_mtu(Encapsulation::WireGuard));
    let felix_configuration = FelixConfiguration {
        type_meta: TypeMeta::new(CALICO_API, "FelixConfiguration"),
        metadata: ObjectMeta::cluster("default"),
        spec: FelixConfigurationSpec {
            vxlan_mtu,
            vxlan_mtu_v6: ipv6_mtu,
            ipip_mtu,
            wireguard_mtu,
            iptables_mark_mask: mark_mask,
            iptables_backend: calico.iptables_backend.name().into(),
            nftables_mode: nftables_mode.into(),
            bpf_enabled: false,
            feature_detect_override: FEATURE_DETECT_OVERRIDE.into(),
            wireguard_enabled: calico.wireguard,
            wireguard_enabled_v6: ipv6_cidr.is_some()
                && mtu_v6.encapsulations.contains(&Encapsulation::WireGuard),
            ipv6_support: ipv6_cidr.is_some(),
            health_enabled: true,
            log_severity_screen: "Info".into(),
            reporting_interval: "0s".into(),
        },
    };

    let node_env = NodeEnv {
        backend: calico.backend,
        autodetection: &calico.ip_autodetection,
        ipv4: ipv4_cidr.map(|c| {
            (
                c.to_string(),
                calico.block_size,
                calico.vxlan_mode,
                calico.ipip_mode,
            )
        }),
        ipv6: ipv6_cidr.map(|c| (c.to_string(), ipv6_mode)),
        vxlan_mtu,
        vxlan_mtu_v6: ipv6_mtu,
        ipip_mtu,
        wireguard_mtu,
        mark_mask: &calico.iptables_mark_mask,
        iptables_backend: calico.iptables_backend,
        nftables_mode,
        wireguard: calico.wireguard,
    };

    Ok(CalicoResources {
        service_accounts: ["calico-node", "calico-kube-controllers"]
            .into_iter()
            .map(|name| ServiceAccount {
                type_meta: TypeMeta::new("v1", "ServiceAccount"),
                metadata: ObjectMeta::namespaced(name),
            })
            .collect(),
        cluster_roles: vec![
            cluster_role("calico-node", calico_node_rules()),
            cluster_role("calico-cni", calico_cni_rules()),
            cluster_role("calico-kube-controllers", kube_controllers_rules()),
        ],
        cluster_role_bindings: vec![
            binding("calico-node", service_account_subject("calico-node")),
            binding(
                "calico-cni",
                Subject {
                    kind: "User".into(),
                    name: kubeconfig.user,
                    api_group: Some(RBAC_GROUP.into()),
                    namespace: None,
                },
            ),
            binding(
                "calico-kube-controllers",
                service_account_subject("calico-kube-controllers"),
            ),
        ],
        config: ConfigMap {
            type_meta: TypeMeta::new("v1", "ConfigMap"),
            metadata: ObjectMeta::namespaced("calico-config"),
            data: config_data,
        },
        felix_configuration,
        ip_pools,
        calico_node: calico_node(&calico.node_image, &node_env.env()),
        kube_controllers: kube_controllers(&calico.kube_controllers_image),
        conflist,
        mtu,
    })
}

/// The `calico-cni` kubeconfig on a node: its path and the user its certificate names.
struct CniKubeconfig {
    path: PathBuf,
    user: String,
}

fn cni_kubeconfig(
    inventory: &Inventory,
    material_dir: &Path,
) -> Result<CniKubeconfig, CalicoError> {
    let plan = plan::plan(inventory);
    plan.nodes
        .iter()
        .flat_map(|n| &n.kubeconfigs)
        .find(|k| k.name == CALICO_CNI_KUBECONFIG)
        .map(|k| CniKubeconfig {
            path: material_dir.join(&k.install),
            user: k.user.clone(),
        })
        .ok_or(CalicoError::NoCniKubeconfig)
}

fn ip_pool(
    name: &str,
    cidr: &IpNet,
    block_size: u8,
    vxlan: EncapsulationMode,
    ipip: EncapsulationMode,
    nat_outgoing: bool,
) -> IpPool {
    IpPool {
        type_meta: TypeMeta::new(CALICO_API, "IPPool"),
        metadata: ObjectMeta::cluster(name),
        spec: IpPoolSpec {
            cidr: cidr.to_string(),
            block_size,
            vxlan_mode: vxlan.name().into(),
            ipip_mode: ipip.name().into(),
            nat_outgoing,
            node_selector: "all()".into(),
        },
    }
}

/// The calico-node settings that come from the inventory.
struct NodeEnv<'a> {
    backend: CalicoBackend,
    autodetection: &'a str,
    ipv4: Option<(String, u8, EncapsulationMode, EncapsulationMode)>,
    ipv6: Option<(String, EncapsulationMode)>,
    vxlan_mtu: u32,
    vxlan_mtu_v6: Option<u32>,
    ipip_mtu: Option<u32>,
    wireguard_mtu: Option<u32>,
    mark_mask: &'a str,
    iptables_backend: IptablesBackend,
    nftables_mode: &'a str,
    wireguard: bool,
}

impl NodeEnv<'_> {
    fn env(&self) -> Vec<EnvVar> {
        let mut env = vec![
            EnvVar::value("DATASTORE_TYPE", "kubernetes"),
            EnvVar::value("WAIT_FOR_DATASTORE", "true"),
            EnvVar::field("NODENAME", "spec.nodeName"),
            EnvVar::value("CALICO_NETWORKING_BACKEND", self.backend.name()),
            EnvVar::value("CLUSTER_TYPE", "k8s"),
            // The pools are rendered; calico-node must not invent 192.168.0.0/16.
            EnvVar::value("NO_DEFAULT_POOLS", "true"),
            // NixOS installs the CNI binaries and conflist; no token minting into /etc/cni/net.d.
            EnvVar::value("CALICO_MANAGE_CNI", "false"),
            EnvVar::value("CALICO_DISABLE_FILE_LOGGING", "true"),
        ];
        match &self.ipv4 {
            Some((cidr, block, vxlan, ipip)) => env.extend([
                EnvVar::value("IP", "autodetect"),
                EnvVar::value("IP_AUTODETECTION_METHOD", self.autodetection),
                EnvVar::value("CALICO_IPV4POOL_CIDR", cidr),
                EnvVar::value("CALICO_IPV4POOL_BLOCK_SIZE", block),
                EnvVar::value("CALICO_IPV4POOL_VXLAN", vxlan.name()),
                EnvVar::value("CALICO_IPV4POOL_IPIP", ipip.name()),
            ]),
            None => env.push(EnvVar::value("IP", "none")),
        }
        match &self.ipv6 {
            Some((cidr, vxlan)) => env.extend([
                EnvVar::value("IP6", "autodetect"),
                EnvVar::value("IP6_AUTODETECTION_METHOD", self.autodetection),
                EnvVar::value("CALICO_IPV6POOL_CIDR", cidr),
                EnvVar::value("CALICO_IPV6POOL_VXLAN", vxlan.name()),
                EnvVar::value("FELIX_IPV6SUPPORT", "true"),
            ]),
            None => env.push(EnvVar::value("FELIX_IPV6SUPPORT", "false")),
        }
        // FELIX_* variables beat FelixConfiguration: they carry the same numbers.
        env.push(EnvVar::value("FELIX_VXLANMTU", self.vxlan_mtu));
        if let Some(v6) = self.vxlan_mtu_v6 {
            env.push(EnvVar::value("FELIX_VXLANMTUV6", v6));
        }
        if let Some(ipip) = self.ipip_mtu {
            env.push(EnvVar::value("FELIX_IPINIPMTU", ipip));
        }
        if let Some(wg) = self.wireguard_mtu {
            env.push(EnvVar::value("FELIX_WIREGUARDMTU", wg));
        }
        env.extend([
            EnvVar::value("FELIX_WIREGUARDENABLED", self.wireguard),
            EnvVar::value("FELIX_IPTABLESMARKMASK", self.mark_mask),
            EnvVar::value("FELIX_IPTABLESBACKEND", self.iptables_backend.name()),
            EnvVar::value("FELIX_NFTABLESMODE", self.nftables_mode),
            EnvVar::value("FELIX_FEATUREDETECTOVERRIDE", FEATURE_DETECT_OVERRIDE),
            EnvVar::value("FELIX_DEFAULTENDPOINTTOHOSTACTION", "ACCEPT"),
            EnvVar::value("FELIX_HEALTHENABLED", "true"),
        ]);
        env
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        resource_names: Vec::new(),
        verbs: strings(verbs),
    }
}

const CALICO_GROUP: &str = "crd.projectcalico.org";

/// Calico 3.30's calico-node rules, without `serviceaccounts/token` (kubepki's CNI has a certificate).
fn calico_node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["pods", "nodes", "namespaces"], &["get"]),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["watch", "list"],
        ),
        rule(&[""], &["endpoints", "services"], &["watch", "list", "get"]),
        rule(&[""], &["configmaps"], &["get"]),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies"],
            &["watch", "list"],
        ),
        rule(
            &["policy.networking.k8s.io"],
            &["adminnetworkpolicies", "baselineadminnetworkpolicies"],
            &["watch", "list"],
        ),
        rule(
            &[""],
            &["pods", "namespaces", "serviceaccounts"],
            &["list", "watch"],
        ),
        rule(&[""], &["pods/status"], &["patch"]),
        rule(
            &[CALICO_GROUP],
            &[
                "globalfelixconfigs",
                "felixconfigurations",
                "bgppeers",
                "bgpfilters",
                "globalbgpconfigs",
                "bgpconfigurations",
                "ippools",
                "ipreservations",
                "ipamblocks",
                "globalnetworkpolicies",
                "stagedglobalnetworkpolicies",
                "networkpolicies",
                "stagednetworkpolicies",
                "stagedkubernetesnetworkpolicies",
                "globalnetworksets",
                "networksets",
                "clusterinformations",
                "hostendpoints",
                "blockaffinities",
                "caliconodestatuses",
                "tiers",
            ],
            &["get", "list", "watch"],
        ),
        rule(&[CALICO_GROUP], &["tiers"], &["create"]),
        rule(
            &[CALICO_GROUP],
            &["ippools", "felixconfigurations", "clusterinformations"],
            &["create", "update"],
        ),
        rule(&[CALICO_GROUP], &["caliconodestatuses"], &["update"]),
        rule(&[""], &["nodes"], &["get", "list", "watch"]),
        rule(
            &[CALICO_GROUP],
            &["blockaffinities", "ipamblocks", "ipamhandles"],
            &["get", "list", "create", "update", "delete"],
        ),
        rule(&[CALICO_GROUP], &["ipamconfigs"], &["get", "create"]),
        rule(&[CALICO_GROUP], &["blockaffinities"], &["watch"]),
    ]
}

/// Calico 3.30's `calico-cni-plugin` rules, for the `calico-cni` user.
fn calico_cni_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["pods", "nodes", "namespaces"], &["get"]),
        rule(&[""], &["pods/status"], &["patch"]),
        rule(
            &[CALICO_GROUP],
            &[
                "blockaffinities",
                "ipamblocks",
                "ipamhandles",
                "clusterinformations",
                "ippools",
                "ipreservations",
                "ipamconfigs",
            ],
            &["get", "list", "create", "update", "delete"],
        ),
    ]
}

/// Calico 3.30's calico-kube-controllers rules.
fn kube_controllers_rules() -> Vec<PolicyRule> {
    let crud_watch = &["get", "list", "create", "update", "delete", "watch"];
    vec![
        rule(&[""], &["nodes"], &["watch", "list", "get"]),
        rule(&[""], &["pods"], &["get", "list", "watch"]),
        rule(
            &[""],
            &["services", "services/status"],
            &["get", "list", "update", "watch"],
        ),
        rule(&[CALICO_GROUP], &["ipreservations"], &["list"]),
        rule(
            &[CALICO_GROUP],
            &[
                "blockaffinities",
                "ipamblocks",
                "ipamhandles",
                "ipamconfigs",
                "tiers",
            ],
            crud_watch,
        ),
        rule(&[CALICO_GROUP], &["ippools"], &["list", "watch"]),
        rule(&[CALICO_GROUP], &["hostendpoints"], crud_watch),
        rule(
            &[CALICO_GROUP],
            &["clusterinformations"],
            &["get", "list", "create", "update", "watch"],
        ),
        rule(
            &[CALICO_GROUP],
            &["kubecontrollersconfigurations"],
            &["get", "list", "create", "update", "watch"],
        ),
    ]
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        type_meta: TypeMeta::new(RBAC_API, "ClusterRole"),
        metadata: ObjectMeta::cluster(name),
        rules,
    }
}

fn service_account_subject(name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        api_group: None,
        namespace: Some(NAMESPACE.into()),
    }
}

fn binding(name: &str, subject: Subject) -> ClusterRoleBinding {
    ClusterRoleBinding {
        type_meta: TypeMeta::new(RBAC_API, "ClusterRoleBinding"),
        metadata: ObjectMeta::cluster(name),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: vec![subject],
    }
}

fn exec(command: &[&str]) -> ExecAction {
    ExecAction {
        command: strings(command),
    }
}

fn linux() -> BTreeMap<String, String> {
    BTreeMap::from([("kubernetes.io/os".to_string(), "linux".to_string())])
}

fn app_labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("k8s-app".to_string(), app.to_string())])
}

fn host_volume(name: &str, path: &str, kind: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        host_path: HostPath {
            path: path.into(),
            kind: kind.map(str::to_string),
        },
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only,
    }
}

fn runtime_default() -> PodSecurityContext {
    PodSecurityContext {
        seccomp_profile: SeccompProfile {
            kind: "RuntimeDefault".into(),
        },
    }
}

fn toleration(key: Option<&str>, effect: Option<&str>) -> Toleration {
    Toleration {
        key: key.map(str::to_string),
        operator: "Exists".into(),
        effect: effect.map(str::to_string),
    }
}

fn calico_node(image: &str, env: &[EnvVar]) -> DaemonSet {
    let app = "calico-node";
    DaemonSet {
        type_meta: TypeMeta::new("apps/v1", "DaemonSet"),
        metadata: ObjectMeta::namespaced(app).with_app(app),
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: app_labels(app),
            },
            update_strategy: UpdateStrategy {
                kind: "RollingUpdate".into(),
                rolling_update: Some(RollingUpdate { max_unavailable: 1 }),
            },
            template: PodTemplate {
                metadata: TemplateMeta {
                    labels: app_labels(app),
                },
                spec: PodSpec {
                    node_selector: linux(),
                    host_network: true,
                    tolerations: vec![
                        toleration(None, Some("NoSchedule")),
                        toleration(Some("CriticalAddonsOnly"), None),
                        toleration(None, Some("NoExecute")),
                    ],
                    service_account_name: app.into(),
                    security_context: runtime_default(),
                    termination_grace_period_seconds: Some(0),
                    priority_class_name: "system-node-critical".into(),
                    containers: vec![Container {
                        name: app.into(),
                        image: image.into(),
                        image_pull_policy: "IfNotPresent".into(),
                        env: env.to_vec(),
                        security_context: Some(SecurityContext {
                            privileged: Some(true),
                            run_as_non_root: None,
                        }),
                        resources: Some(ResourceRequirements {
                            requests: BTreeMap::from([("cpu".to_string(), "250m".to_string())]),
                        }),
                        lifecycle: Some(Lifecycle {
                            pre_stop: LifecycleHandler {
                                exec: exec(&["/bin/calico-node", "-shutdown"]),
                            },
                        }),
                        // Felix only: the vxlan backend runs no BIRD, so no -bird-* checks.
                        liveness_probe: Probe {
                            exec: exec(&["/bin/calico-node", "-felix-live"]),
                            period_seconds: 10,
                            initial_delay_seconds: Some(10),
                            failure_threshold: Some(6),
                            timeout_seconds: 10,
                        },
                        readiness_probe: Probe {
                            exec: exec(&["/bin/calico-node", "-felix-ready"]),
                            period_seconds: 10,
                            initial_delay_seconds: None,
                            failure_threshold: None,
                            timeout_seconds: 10,
                        },
                        volume_mounts: vec![
                            mount("lib-modules", "/lib/modules", true),
                            mount("xtables-lock", "/run/xtables.lock", false),
                            mount("var-run-calico", "/var/run/calico", false),
                            mount("var-lib-calico", "/var/lib/calico", false),
                            mount("policysync", "/var/run/nodeagent", false),
                        ],
                    }],
                    volumes: vec![
                        host_volume("lib-modules", "/lib/modules", None),
                        host_volume("xtables-lock", "/run/xtables.lock", Some("FileOrCreate")),
                        host_volume(
                            "var-run-calico",
                            "/var/run/calico",
                            Some("DirectoryOrCreate"),
                        ),
                        host_volume(
                            "var-lib-calico",
                            "/var/lib/calico",
                            Some("DirectoryOrCreate"),
                        ),
                        host_volume(
                            "policysync",
                            "/var/run/nodeagent",
                            Some("DirectoryOrCreate"),
                        ),
                    ],
                },
            },
        },
    }
}

fn kube_controllers(image: &str) -> Deployment {
    let app = "calico-kube-controllers";
    Deployment {
        type_meta: TypeMeta::new("apps/v1", "Deployment"),
        metadata: ObjectMeta::namespaced(app).with_app(app),
        spec: DeploymentSpec {
            // Only one instance may be active.
            replicas: 1,
            selector: LabelSelector {
                match_labels: app_labels(app),
            },
            strategy: UpdateStrategy {
                kind: "Recreate".into(),
                rolling_update: None,
            },
            template: PodTemplate {
                metadata: TemplateMeta {
                    labels: app_labels(app),
                },
                spec: PodSpec {
                    node_selector: linux(),
                    host_network: false,
                    tolerations: vec![
                        toleration(Some("CriticalAddonsOnly"), None),
                        toleration(
                            Some("node-role.kubernetes.io/control-plane"),
                            Some("NoSchedule"),
                        ),
                    ],
                    service_account_name: app.into(),
                    security_context: runtime_default(),
                    termination_grace_period_seconds: None,
                    priority_class_name: "system-cluster-critical".into(),
                    containers: vec![Container {
                        name: app.into(),
                        image: image.into(),
                        image_pull_policy: "IfNotPresent".into(),
                        env: vec![
                            // Only the node controller: no IPAM garbage for load balancers, no policy sync.
                            EnvVar::value("ENABLED_CONTROLLERS", "node"),
                            EnvVar::value("DATASTORE_TYPE", "kubernetes"),
                        ],
                        security_context: Some(SecurityContext {
                            privileged: None,
                            run_as_non_root: Some(true),
                        }),
                        resources: None,
                        lifecycle: None,
                        liveness_probe: Probe {
                            exec: exec(&["/usr/bin/check-status", "-l"]),
                            period_seconds: 10,
                            initial_delay_seconds: Some(10),
                            failure_threshold: Some(6),
                            timeout_seconds: 10,
                        },
                        readiness_probe: Probe {
                            exec: exec(&["/usr/bin/check-status", "-r"]),
                            period_seconds: 10,
                            initial_delay_seconds: None,
                            failure_threshold: None,
                            timeout_seconds: 1,
                        },
                        volume_mounts: Vec::new(),
                    }],
                    volumes: Vec::new(),
                },
            },
        },
    }
}
