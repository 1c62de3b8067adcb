# ec2-controlplane: the AWS t3.medium control plane (and etcd member).
#
# Only what is specific to this machine lives here; its Kubernetes services
# follow from its roles in hosts/cluster.toml. The on-prem workers are reached
# over the tailnet only (there is no VPN to the home LAN), which is why its
# `node_ip` in cluster.toml is its tailnet address and the API endpoint is its
# MagicDNS name.
{ modulesPath, ... }:
{
  imports = [
    "${modulesPath}/virtualisation/amazon-image.nix"
    ../common.nix
  ];

  nixpkgs.hostPlatform = "x86_64-linux";

  # The API server answers operators on the tailnet; the security group needs
  # nothing beyond SSH and Tailscale's UDP port.
  system.stateVersion = "25.05";
}
