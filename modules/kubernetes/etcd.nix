# An etcd member, for nodes with the `etcd` role in the inventory.
#
# Client and peer TLS with the etcd CA (separate from the Kubernetes CA, so no
# Kubernetes client certificate can talk to etcd), listening on the node's
# primary IP and loopback. The initial cluster lists every etcd member of the
# inventory, so adding a member is one [[nodes]] entry. It does not handle
# joining an existing cluster (`initialClusterState = "existing"` plus
# `etcdctl member add`), which stays an operator step (docs/bring-up.md).
{ config, lib, ... }:
let
  cfg = config.services.kubepki;
  inv = cfg.cluster;
  node = inv.node cfg.nodeName;
  m = cfg.material;
  etcdCa = m.file "etcd-ca" "trust-bundle";
  inherit (inv.etcd)
    clientPort
    peerPort
    clientUrl
    peerUrl
    ;
in
{
  config = lib.mkIf (cfg.enable && node.isEtcd) {
    assertions = [
      {
        assertion = node.primaryIp != null;
        message = "etcd member `${node.name}` has no address in ${toString cfg.inventory}. Fix: set node_ip or an address for it.";
      }
    ];

    services.etcd = {
      enable = true;
      name = node.name;
      certFile = m.file "etcd-server" "certificate";
      keyFile = m.file "etcd-server" "secret";
      trustedCaFile = etcdCa;
      peerCertFile = m.file "etcd-peer" "certificate";
      peerKeyFile = m.file "etcd-peer" "secret";
      peerTrustedCaFile = etcdCa;
      clientCertAuth = true;
      peerClientCertAuth = true;
      listenClientUrls = [
        (clientUrl "127.0.0.1")
        (clientUrl node.primaryIp)
      ];
      listenPeerUrls = [ (peerUrl node.primaryIp) ];
      advertiseClientUrls = [ (clientUrl node.primaryIp) ];
      initialAdvertisePeerUrls = [ (peerUrl node.primaryIp) ];
      initialCluster = map (member: "${member.name}=${peerUrl member.primaryIp}") inv.etcdMembers;
      initialClusterToken = inv.cluster.name;
    };

    # The node IP may be the tailnet address, which appears only once tailscaled
    # is up; let etcd bind it at boot instead of failing until then.
    boot.kernel.sysctl = {
      "net.ipv4.ip_nonlocal_bind" = 1;
      "net.ipv6.ip_nonlocal_bind" = 1;
    };

    networking.firewall.allowedTCPPorts = [
      clientPort
      peerPort
    ];
  };
}
