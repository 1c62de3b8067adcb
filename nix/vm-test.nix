# NixOS VM test: the example cluster's control plane and one worker, booted
# from the committed example bundle (hosts/pki), each VM holding its node's
# TEST host key from tests/keys. Passes when the worker registers with its
# kubepki kubelet certificate and turns Ready, and the everyday admin (group
# kubeadm:cluster-admins, bound by the bootstrap RBAC) can list nodes.
#
# Test plumbing, not production: the VMs share one L2 link, so the inventory's
# addresses are put on eth1 directly, the API endpoint name resolves through
# /etc/hosts, and a bridge CNI stands in for Calico (its images cannot be
# pulled inside the build sandbox; Ready only needs a working CNI).
{
  pkgs,
  self,
  inventoryFile,
}:
let
  inherit (pkgs) lib;
  inventory = import ./inventory.nix { inherit lib; } inventoryFile;
  controlPlane = builtins.head inventory.controlPlanes;
  # The first worker with an ed25519 host key (the VM copies that key's TEST private half).
  worker = builtins.head (
    builtins.filter (n: lib.hasSuffix "ssh_host_ed25519_key.pub" n.hostKey) inventory.workers
  );
  kubectl = "${pkgs.kubectl}/bin/kubectl";
  net = import ./net.nix;
  prefixOf = cidr: (net.splitCidr cidr).prefix;
  # One /24 of the first pod CIDR per VM (what Calico IPAM would hand out in blocks).
  podSubnet = n: "${net.nthHost (builtins.head inventory.podCidrs) (256 * n)}/24";
  podSubnets = {
    ${controlPlane.name} = podSubnet 0;
    ${worker.name} = podSubnet 1;
  };

  vm =
    node:
    { ... }:
    {
      imports = [ self.nixosModules.default ];
      networking.hostName = node.name;
      services.kubepki = {
        enable = true;
        inventory = inventoryFile;
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
      };
      # The node's TEST host key, in place before kubepki activates.
      system.activationScripts.kubepkiTestHostKey.text = ''
        install -D -m 0600 ${../tests/keys + "/${node.name}/ssh_host_ed25519_key"} /etc/ssh/ssh_host_ed25519_key
      '';
      system.activationScripts.kubepki.deps = [ "kubepkiTestHostKey" ];

      # The inventory's addresses on the test link, and the API endpoint by name.
      networking.interfaces.eth1.ipv4.addresses = lib.mkForce (
        map (address: {
          inherit address;
          prefixLength = prefixOf inventory.spec.network.tailnet_cidr;
        }) node.addresses.tailnet
        ++ map (address: {
          inherit address;
          prefixLength = prefixOf (builtins.head inventory.spec.network.lan_cidrs);
        }) node.addresses.lan
      );
      # A node without a LAN address still reaches the LAN node IPs on the shared link.
      networking.interfaces.eth1.ipv4.routes = lib.optionals (node.addresses.lan == [ ]) (
        map (
          cidr:
          let
            c = net.splitCidr cidr;
          in
          {
            inherit (c) address;
            prefixLength = c.prefix;
          }
        ) inventory.spec.network.lan_cidrs
      );
      networking.hosts.${controlPlane.primaryIp} = [ inventory.apiServerHost ];

      # A bridge CNI with a per-node pod subnet, instead of Calico.
      services.kubernetes.kubelet.cni.configDir = lib.mkForce null;
      services.kubernetes.kubelet.cni.config = lib.mkForce [
        {
          cniVersion = "0.3.1";
          name = "test-bridge";
          type = "bridge";
          bridge = "cni0";
          isGateway = true;
          ipMasq = true;
          ipam = {
            type = "host-local";
            subnet = podSubnets.${node.name};
          };
        }
      ];

      virtualisation.memorySize = if node.isControlPlane then 3072 else 1536;
      virtualisation.diskSize = 4096;
      environment.systemPackages = [ pkgs.kubectl ];
    };
in
pkgs.testers.runNixOSTest {
  name = "kubepki-cluster";
  nodes = {
    controlplane = vm controlPlane;
    worker = vm worker;
  };
  testScript = ''
    start_all()

    with subtest("activation installed the material"):
        controlplane.wait_for_unit("multi-user.target")
        controlplane.succeed("test -L /run/kubepki/current")
        controlplane.succeed("test -s /run/kubepki/current/apiserver.crt")
        controlplane.succeed("stat -c %U /run/kubepki/current/etcd-server.key | grep -qx etcd")
        worker.succeed("test -s /run/kubepki/current/kubelet-client.key")
        worker.fail("test -e /run/kubepki/current/apiserver.key")

    with subtest("the control plane comes up on kubepki's certificates"):
        controlplane.wait_for_unit("etcd.service")
        controlplane.wait_for_unit("kube-apiserver.service")
        controlplane.wait_for_unit("kubepki-bootstrap.service", timeout=600)

    with subtest("the worker joins with its own kubelet certificate and turns Ready"):
        worker.wait_for_unit("kubelet.service")
        controlplane.wait_until_succeeds(
            "KUBECONFIG=/run/kubepki/current/super-admin.kubeconfig ${kubectl} get node ${worker.name} "
            + "-o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True",
            timeout=900,
        )

    with subtest("the everyday admin is authorised through RBAC, not system:masters"):
        controlplane.succeed("KUBECONFIG=/run/kubepki/current/admin.kubeconfig ${kubectl} get nodes")
        controlplane.succeed(
            "KUBECONFIG=/run/kubepki/current/admin.kubeconfig ${kubectl} auth whoami -o jsonpath='{.status.userInfo.groups}' | grep -v system:masters"
        )
  '';
}
