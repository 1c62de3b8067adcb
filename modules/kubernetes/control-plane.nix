# A control-plane node: kube-apiserver, kube-controller-manager and
# kube-scheduler on kubepki's material, plus the bootstrap RBAC.
#
# The API server certificate already carries every SAN (kubepki's plan puts
# the node's names and addresses, the API endpoints and the first service IP
# in it), so `extraSANs` stays empty. The front-proxy CA, the encryption-at-
# rest config and the CSR-signing CA key have no nixpkgs option and go in
# `extraOpts`. The bootstrap oneshot waits for the API server, then applies,
# with the break-glass super-admin identity and server-side apply:
#   * group kubeadm:cluster-admins -> cluster-admin (the everyday admin, revocable by RBAC),
#   * user kube-apiserver-kubelet-client -> system:kubelet-api-admin,
#   * user system:kube-proxy -> system:node-proxier,
#   * the add-ons nixpkgs modules declare (CoreDNS), since the nixpkgs addon
#     manager needs an identity kubepki does not issue and stays off.
# Calico's own resources, the calico-cni user's RBAC included, are rendered by
# `kubepki calico` and applied by modules/calico.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.kubepki;
  inv = cfg.cluster;
  node = inv.node cfg.nodeName;
  m = cfg.material;
  k8s = config.services.kubernetes;
  ca = m.file "kubernetes-ca" "trust-bundle";
  kubeconfigFor = m.kubeconfigOptions inv.apiServerUrl;
  signsCsrs = m.has "kubernetes-ca" "secret";

  rbac = "rbac.authorization.k8s.io";
  clusterRoleBinding = name: role: subject: {
    apiVersion = "${rbac}/v1";
    kind = "ClusterRoleBinding";
    metadata = {
      inherit name;
      labels."app.kubernetes.io/managed-by" = "kubepki";
    };
    roleRef = {
      apiGroup = rbac;
      kind = "ClusterRole";
      name = role;
    };
    subjects = [ (subject // { apiGroup = rbac; }) ];
  };
  bootstrapRbac = [
    (clusterRoleBinding "kubeadm:cluster-admins" "cluster-admin" {
      kind = "Group";
      name = "kubeadm:cluster-admins";
    })
    (clusterRoleBinding "kubepki:apiserver-kubelet-client" "system:kubelet-api-admin" {
      kind = "User";
      name = "kube-apiserver-kubelet-client";
    })
    (clusterRoleBinding "kubepki:kube-proxy" "system:node-proxier" {
      kind = "User";
      name = "system:kube-proxy";
    })
  ];
  addons =
    lib.attrValues k8s.addonManager.bootstrapAddons
    ++ lib.flatten (lib.attrValues k8s.addonManager.addons);
  bootstrapManifest = pkgs.writeText "kubepki-bootstrap.json" (
    builtins.toJSON {
      apiVersion = "v1";
      kind = "List";
      items = cfg.bootstrap.objects;
    }
  );
  # This node's own API server, over loopback (a SAN of its certificate), so
  # bootstrap does not wait for the tailnet's DNS.
  kubectl = "${k8s.package}/bin/kubectl --server=https://127.0.0.1:${toString inv.spec.api.port}";
in
{
  options.services.kubepki.bootstrap.objects = lib.mkOption {
    type = lib.types.listOf lib.types.attrs;
    default = [ ];
    description = ''
      Kubernetes objects the control plane applies (server-side, as the
      super-admin) once its API server answers: kubepki's bootstrap RBAC and
      the add-ons nixpkgs modules declare. Other modules may append theirs.
    '';
  };

  config = lib.mkIf (cfg.enable && node.isControlPlane) {
    services.kubepki.bootstrap.objects = bootstrapRbac ++ addons;

    services.kubernetes = {
      apiserver = {
        enable = true;
        advertiseAddress = node.primaryIp;
        securePort = inv.spec.api.port;
        serviceClusterIpRange = lib.concatStringsSep "," inv.serviceCidrs;
        # calico-node runs privileged.
        allowPrivileged = true;
        clientCaFile = ca;
        tlsCertFile = m.file "apiserver" "certificate";
        tlsKeyFile = m.file "apiserver" "secret";
        kubeletClientCaFile = ca;
        kubeletClientCertFile = m.file "apiserver-kubelet-client" "certificate";
        kubeletClientKeyFile = m.file "apiserver-kubelet-client" "secret";
        proxyClientCertFile = m.file "front-proxy-client" "certificate";
        proxyClientKeyFile = m.file "front-proxy-client" "secret";
        serviceAccountKeyFile = m.file "service-account" "public-key";
        serviceAccountSigningKeyFile = m.file "service-account" "secret";
        etcd = {
          servers = inv.etcd.servers;
          caFile = m.file "etcd-ca" "trust-bundle";
          certFile = m.file "apiserver-etcd-client" "certificate";
          keyFile = m.file "apiserver-etcd-client" "secret";
        };
        extraOpts = lib.concatStringsSep " " [
          "--requestheader-client-ca-file=${m.file "front-proxy-ca" "trust-bundle"}"
          "--requestheader-allowed-names=front-proxy-client"
          "--requestheader-extra-headers-prefix=X-Remote-Extra-"
          "--requestheader-group-headers=X-Remote-Group"
          "--requestheader-username-headers=X-Remote-User"
          "--encryption-provider-config=${m.file "encryption-config" "secret"}"
        ];
      };

      controllerManager = {
        enable = true;
        clusterCidr = lib.concatStringsSep "," inv.podCidrs;
        rootCaFile = ca;
        serviceAccountKeyFile = m.file "service-account" "secret";
        kubeconfig = kubeconfigFor "controller-manager";
        extraOpts = lib.concatStringsSep " " (
          [ "--service-cluster-ip-range=${lib.concatStringsSep "," inv.serviceCidrs}" ]
          # Signs kubelet and other CSRs with the Kubernetes CA key (pki.controller_manager_signs_csrs).
          ++ lib.optionals signsCsrs [
            "--cluster-signing-cert-file=${ca}"
            "--cluster-signing-key-file=${m.file "kubernetes-ca" "secret"}"
          ]
        );
      };

      scheduler = {
        enable = true;
        kubeconfig = kubeconfigFor "scheduler";
      };
    };

    systemd.services.kubepki-bootstrap = {
      description = "Apply kubepki's bootstrap RBAC and the cluster add-ons";
      wantedBy = [ "kubernetes.target" ];
      after = [ "kube-apiserver.service" ];
      wants = [ "kube-apiserver.service" ];
      # Re-applied whenever the manifest changes.
      restartTriggers = [ bootstrapManifest ];
      environment.KUBECONFIG = m.kubeconfig "super-admin";
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        Restart = "on-failure";
        RestartSec = 10;
        # Never hold nixos-rebuild forever; a failure is retried.
        TimeoutStartSec = "10min";
      };
      script = ''
        until ${kubectl} get --raw=/readyz >/dev/null 2>&1; do
          echo "waiting for the local API server"
          sleep 2
        done
        ${kubectl} apply --server-side --force-conflicts --field-manager=kubepki -f ${bootstrapManifest}
      '';
    };

    networking.firewall.allowedTCPPorts = [ inv.spec.api.port ];
  };
}
