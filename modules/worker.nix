# The worker role: kubelet, kube-proxy, containerd, the Calico CNI and the
# signed binary cache, all from hosts/cluster.toml and the kubepki bundle.
# The same files as the control-plane role minus the control-plane services;
# a node that is both (or etcd too) gets each part its inventory roles ask for.
{
  imports = [
    ./kubepki.nix
    ./kubernetes/node.nix
    ./kubernetes/etcd.nix
    ./calico.nix
    ./cache.nix
  ];
}
