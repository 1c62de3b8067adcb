# The inventory (hosts/cluster.toml) as the NixOS modules see it.
#
# Reads the file with `builtins.fromTOML`, applies the same defaults as the
# kubepki tool (src/inventory/mod.rs) and derives what the modules need: the
# node being built, nodes by role, each node's primary IP, the API server URL,
# the service and pod CIDRs, the first and the DNS service IP, and the pod MTU.
# Every rule here mirrors one in Rust, and tests/nix_helpers.rs checks that both
# readings of the example inventory agree (`kubepki inventory --derived`).
#
# It does not validate: `kubepki plan`/`recreate` reject a bad inventory with a
# located error before a bundle exists, and a node is only deployed with one.
# Only builtins are used, so it evaluates under a bare `nix-instantiate`;
# `lib` is accepted so modules can call it like any nixpkgs-style helper.
#
#   inventory = import ./nix/inventory.nix { inherit lib; } ./hosts/cluster.toml;
#   inventory.node "laptop-ultra"   inventory.podMtu   inventory.apiServerUrl
{
  lib ? null,
}:
path:
let
  inherit (builtins)
    any
    attrNames
    elem
    filter
    foldl'
    hasAttr
    head
    length
    listToAttrs
    map
    ;
  net = import ./net.nix;

  raw = builtins.fromTOML (builtins.readFile path);
  or' = set: name: default: if hasAttr name set then set.${name} else default;
  withDefaults = defaults: set: defaults // set;

  # ----- defaults, field for field as in src/inventory/mod.rs -----
  calicoVersion = (or' raw "calico" { }).version or "3.30.3";
  spec = {
    cluster = withDefaults { domain = "cluster.local"; } raw.cluster;
    api = withDefaults {
      port = 6443;
      endpoints = [ ];
    } (or' raw "api" { });
    network =
      let
        n = withDefaults {
          lan_cidrs = [ ];
          vpc_cidrs = [ ];
          tailnet_cidr = "100.64.0.0/10";
        } raw.network;
        cidrs = map net.canonicalCidr;
      in
      n
      // {
        service_cidrs = cidrs n.service_cidrs;
        pod_cidrs = cidrs n.pod_cidrs;
        lan_cidrs = cidrs n.lan_cidrs;
        vpc_cidrs = cidrs n.vpc_cidrs;
        tailnet_cidr = net.canonicalCidr n.tailnet_cidr;
        mtu = withDefaults {
          lan = 1500;
          vpc = 9001;
          tailnet = 1280;
        } (or' n "mtu" { });
      };
    pki =
      let
        p = withDefaults {
          algorithm = "ecdsa-p256";
          ca_validity_days = 3650;
          leaf_validity_days = 365;
          renew_before_days = 30;
          controller_manager_signs_csrs = true;
          bundle = "pki";
          pins = { };
        } (or' raw "pki" { });
      in
      # Rust leaves `pins` out of its JSON when there are none.
      if p.pins == { } then removeAttrs p [ "pins" ] else p;
    etcd = withDefaults { external_servers = [ ]; } (or' raw "etcd" { });
    calico = withDefaults {
      version = calicoVersion;
      backend = "vxlan";
      vxlan_mode = "CrossSubnet";
      ipip_mode = "Never";
      wireguard = false;
      ip_autodetection = "kubernetes-internal-ip";
      iptables_mark_mask = "0xff000000";
      block_size = 26;
      nat_outgoing = true;
      dataplane = "iptables";
      iptables_backend = "Auto";
      node_image = "quay.io/calico/node:v3.30.3";
      kube_controllers_image = "quay.io/calico/kube-controllers:v3.30.3";
    } (or' raw "calico" { });
    operators = or' raw "operators" [ ];
    # Addresses as Rust prints them (canonical IPv6), so both readings compare equal.
    nodes = map (
      n:
      withDefaults { names = [ ]; } n
      // (if n ? node_ip then { node_ip = net.canonical n.node_ip; } else { })
      // {
        addresses = builtins.mapAttrs (_: map net.canonical) (
          withDefaults {
            lan = [ ];
            vpc = [ ];
            tailnet = [ ];
            public = [ ];
          } (or' n "addresses" { })
        );
      }
    ) (or' raw "nodes" [ ]);
  }
  // (if hasAttr "cache" raw then { cache = withDefaults { ci_recipients = [ ]; } raw.cache; } else { });

  # ----- nodes -----
  hasRole = role: node: elem role node.roles;
  # `Node::primary_ip`: node_ip, else the first LAN, VPC or tailnet address.
  primaryIp =
    n:
    let
      candidates =
        (if n ? node_ip then [ n.node_ip ] else [ ])
        ++ n.addresses.lan
        ++ n.addresses.vpc
        ++ n.addresses.tailnet;
    in
    if candidates == [ ] then null else net.canonical (head candidates);
  # `Addresses::all`: LAN, VPC, tailnet, public, without duplicates.
  allAddresses =
    a:
    foldl' (acc: ip: if elem ip acc then acc else acc ++ [ ip ]) [ ] (
      map net.canonical (a.lan ++ a.vpc ++ a.tailnet ++ a.public)
    );
  describe = n: {
    inherit (n) name roles names;
    hostKey = n.host_key;
    nodeIp = if n ? node_ip then net.canonical n.node_ip else null;
    primaryIp = primaryIp n;
    addresses = n.addresses;
    allAddresses = allAddresses n.addresses;
    isControlPlane = hasRole "control-plane" n;
    isEtcd = hasRole "etcd" n;
    isWorker = hasRole "worker" n;
  };
  nodeList = map describe spec.nodes;
  nodes = listToAttrs (
    map (n: {
      inherit (n) name;
      value = n;
    }) nodeList
  );
  nodesWithRole = role: filter (n: elem role n.roles) nodeList;
  controlPlanes = nodesWithRole "control-plane";
  etcdMembers = nodesWithRole "etcd";
  workers = nodesWithRole "worker";

  # ----- API server -----
  # `Inventory::api_server_url`: the first endpoint, else the first control plane's primary IP.
  apiServerHost =
    if spec.api.endpoints != [ ] then
      head spec.api.endpoints
    else if controlPlanes != [ ] && (head controlPlanes).primaryIp != null then
      (head controlPlanes).primaryIp
    else
      "127.0.0.1";
  apiServerUrl = "https://${net.urlHost apiServerHost}:${toString spec.api.port}";

  # ----- pod MTU (the model of src/calico/mtu.rs) -----
  # The smallest MTU of the kinds of link pod traffic crosses (a kind counts
  # when some node has an address on it; the LAN when none does) minus the
  # largest overhead among the encapsulations turned on: IP-in-IP 20 (IPv4
  # only), VXLAN 50 / 70 for IPv6, WireGuard 60 / 80 for IPv6. An IPv6
  # encapsulation that would leave less than 1280 bytes is left out (the
  # kernel disables IPv6 below it). The cluster's pod MTU is the smallest over
  # the pod CIDRs' families.
  linkKinds = [
    "lan"
    "vpc"
    "tailnet"
  ];
  linkInUse = kind: any (n: n.addresses.${kind} != [ ]) spec.nodes;
  linksInUse = filter linkInUse linkKinds;
  linkMtus = map (kind: spec.network.mtu.${kind}) (if linksInUse == [ ] then [ "lan" ] else linksInUse);
  smallest = list: foldl' (a: b: if b < a then b else a) (head list) list;
  largest = list: foldl' (a: b: if b > a then b else a) 0 list;
  limitingMtu = smallest linkMtus;
  saturatingSub = a: b: if a > b then a - b else 0;
  ipv6MinimumMtu = 1280;
  c = spec.calico;
  # What pod traffic between nodes is wrapped in (firewall openings follow it).
  encapsulation = {
    vxlan = c.vxlan_mode != "Never";
    ipip = c.ipip_mode != "Never";
    wireguard = c.wireguard;
  };
  podMtuFor =
    family:
    let
      v4 = family == "ipv4";
      requested =
        (if encapsulation.ipip && v4 then [ 20 ] else [ ])
        ++ (if encapsulation.vxlan then [ (if v4 then 50 else 70) ] else [ ])
        ++ (if encapsulation.wireguard then [ (if v4 then 60 else 80) ] else [ ]);
      feasible = filter (o: v4 || saturatingSub limitingMtu o >= ipv6MinimumMtu) requested;
    in
    saturatingSub limitingMtu (largest feasible);
  podFamilies =
    (if any (cidr: !net.isIpv6 cidr) spec.network.pod_cidrs then [ "ipv4" ] else [ ])
    ++ (if any net.isIpv6 spec.network.pod_cidrs then [ "ipv6" ] else [ ]);
  podMtu = if podFamilies == [ ] then podMtuFor "ipv4" else smallest (map podMtuFor podFamilies);
  podMtuV6 = podMtuFor "ipv6";

  serviceCidrs = spec.network.service_cidrs;
  podCidrs = spec.network.pod_cidrs;
  firstServiceIp = net.nthHost (head serviceCidrs) 1;
  # kubeadm's convention: the cluster DNS Service takes the 10th address.
  clusterDnsIp = net.nthHost (head serviceCidrs) 10;

  # etcd: the stacked members' client URLs, then any external servers.
  etcd = rec {
    clientPort = 2379;
    peerPort = 2380;
    clientUrl = ip: "https://${net.urlHost ip}:${toString clientPort}";
    peerUrl = ip: "https://${net.urlHost ip}:${toString peerPort}";
    servers =
      map (n: clientUrl n.primaryIp) (filter (n: n.primaryIp != null) etcdMembers)
      ++ spec.etcd.external_servers;
  };

  bundleDir = dirOf path + "/${spec.pki.bundle}";
  pins = or' (or' raw "pki" { }) "pins" { };

  node =
    name:
    nodes.${name} or (throw (
      "kubepki: node `${name}` is not in ${toString path} (nodes: "
      + builtins.concatStringsSep ", " (attrNames nodes)
      + "). Fix: add a [[nodes]] entry named `${name}`, or set services.kubepki.nodeName."
    ));
in
{
  inherit
    spec
    nodes
    nodeList
    node
    nodesWithRole
    controlPlanes
    etcdMembers
    workers
    apiServerHost
    apiServerUrl
    podMtu
    podMtuV6
    serviceCidrs
    podCidrs
    firstServiceIp
    clusterDnsIp
    bundleDir
    pins
    etcd
    encapsulation
    ;
  inherit (net) urlHost;
  cluster = spec.cluster;
  # The same JSON as `kubepki inventory --derived` prints under "derived".
  derived = {
    api_server_url = apiServerUrl;
    pod_mtu = podMtu;
    pod_mtu_v6 = podMtuV6;
    service_cidrs = serviceCidrs;
    pod_cidrs = podCidrs;
    first_service_ip = firstServiceIp;
    cluster_dns_ip = clusterDnsIp;
    control_planes = map (n: n.name) controlPlanes;
    etcd_members = map (n: n.name) etcdMembers;
    workers = map (n: n.name) workers;
    nodes = map (n: {
      inherit (n) name roles;
      primary_ip = n.primaryIp;
      addresses = n.allAddresses;
    }) nodeList;
  };
}
