# Every inventory node: kubelet, kube-proxy and containerd, wired to the
# material kubepki installs.
#
# nixpkgs' `services.kubernetes` is configured component by component with
# `easyCerts = false`; `roles` is left empty because any role turns easyCerts
# (and flannel) back on. Names, addresses, CIDRs, the cluster domain and the
# API URL come from the inventory helper; every certificate, key and CA path
# comes from the bundle manifest. The CNI (Calico) is modules/calico.nix.
{ config, lib, ... }:
let
  cfg = config.services.kubepki;
  inv = cfg.cluster;
  node = inv.node cfg.nodeName;
  m = cfg.material;
  ca = m.file "kubernetes-ca" "trust-bundle";
  kubeconfigFor = m.kubeconfigOptions inv.apiServerUrl;
in
{
  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = config.services.kubernetes.roles == [ ];
        message = "services.kubernetes.roles turns on easyCerts and flannel, which replace kubepki's certificates. Fix: remove services.kubernetes.roles; the kubepki roles configure each component.";
      }
    ];

    services.kubernetes = {
      easyCerts = false;
      caFile = ca;
      masterAddress = inv.apiServerHost;
      apiserverAddress = inv.apiServerUrl;
      clusterCidr = lib.concatStringsSep "," inv.podCidrs;
      addons.dns = {
        clusterIp = inv.clusterDnsIp;
        clusterDomain = inv.cluster.domain;
      };

      kubelet = {
        enable = true;
        hostname = node.name;
        nodeIp = node.primaryIp;
        clusterDns = [ inv.clusterDnsIp ];
        clusterDomain = inv.cluster.domain;
        clientCaFile = ca;
        tlsCertFile = m.file "kubelet-serving" "certificate";
        tlsKeyFile = m.file "kubelet-serving" "secret";
        kubeconfig = kubeconfigFor "kubelet-client";
        # A control plane that is not also a worker only runs DaemonSets (calico-node).
        taints = lib.mkIf (!node.isWorker) {
          control-plane = {
            key = "node-role.kubernetes.io/control-plane";
            value = "true";
            effect = "NoSchedule";
          };
        };
      };

      proxy = {
        enable = true;
        hostname = node.name;
        kubeconfig = kubeconfigFor "kube-proxy";
      };
    };

    virtualisation.containerd.enable = true;

    # The apiserver reaches every kubelet; pod traffic between nodes is
    # encapsulated (Calico's default VXLAN and WireGuard ports).
    networking.firewall.allowedTCPPorts = [ config.services.kubernetes.kubelet.port ];
    networking.firewall.allowedUDPPorts =
      lib.optional inv.encapsulation.vxlan 4789 ++ lib.optional inv.encapsulation.wireguard 51820;
  };
}
