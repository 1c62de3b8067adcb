# Every kubepki NixOS module. Each part switches itself on from this node's
# roles in the inventory (`services.kubepki.nodeName` in `services.kubepki.inventory`),
# so one import serves every host.
{
  imports = [
    ./control-plane.nix
    ./worker.nix
  ];
}
