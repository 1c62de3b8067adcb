# PLACEHOLDER: NOT this machine's hardware configuration.
#
# Replace this whole file with the output of
#   nixos-generate-config --show-hardware-config
# run on laptop-ultra. It exists only so the flake evaluates; a system built from it
# will not find its disks.
{ lib, modulesPath, ... }:
{
  imports = [ (modulesPath + "/installer/scan/not-detected.nix") ];

  nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";

  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos"; # PLACEHOLDER
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/boot"; # PLACEHOLDER
    fsType = "vfat";
  };
}
