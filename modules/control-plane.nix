# The control-plane role: everything a node with `roles = ["control-plane", ...]`
# in hosts/cluster.toml runs. Import it (or modules/default.nix) and set
# `services.kubepki.enable` and `services.kubepki.inventory`; what the node runs
# follows from its roles in the inventory, so importing this on a worker adds
# nothing but the worker parts.
{
  imports = [
    ./kubepki.nix
    ./kubernetes/node.nix
    ./kubernetes/etcd.nix
    ./kubernetes/control-plane.nix
    ./calico.nix
    ./cache.nix
  ];
}
