# PLACEHOLDER: NOT this machine's hardware configuration.
#
# Replace this whole file with the output of
#   nixos-generate-config --show-hardware-config
# run on laptop-old. It exists only so the flake evaluates; a system built from it
# will not find its disks.
{ lib, modulesPath, ... }:
{
  imports = [ (modulesPath + "/installer/scan/not-detected.nix") ];

  nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";

  boot.loader.grub.device = "/dev/sda"; # PLACEHOLDER
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos"; # PLACEHOLDER
    fsType = "ext4";
  };
}
