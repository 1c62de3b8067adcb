# IP address arithmetic in plain Nix builtins: parse a CIDR, take its n-th
# host, print the address the way Rust's `std::net` prints it.
#
# Only what the inventory helpers need (the `kubernetes` Service IP and the
# cluster DNS IP of a service CIDR). It does not validate addresses: the
# kubepki tool validates cluster.toml before anything is deployed, and the
# agreement test (tests/nix_helpers.rs) compares these results with Rust's.
let
  inherit (builtins)
    elemAt
    filter
    foldl'
    genList
    length
    split
    ;

  chars = s: genList (i: builtins.substring i 1 s) (builtins.stringLength s);
  splitOn = sep: s: filter builtins.isString (split sep s);
  mod = a: b: a - (a / b) * b;
  pow2 = n: foldl' (acc: _: acc * 2) 1 (genList (i: i) n);
  isIpv6 = s: builtins.match ".*:.*" s != null;

  hexDigits = {
    "0" = 0; "1" = 1; "2" = 2; "3" = 3; "4" = 4; "5" = 5; "6" = 6; "7" = 7;
    "8" = 8; "9" = 9; a = 10; b = 11; c = 12; d = 13; e = 14; f = 15;
    A = 10; B = 11; C = 12; D = 13; E = 14; F = 15;
  };
  fromHex = s: foldl' (acc: c: acc * 16 + hexDigits.${c}) 0 (chars s);
  toHex =
    n:
    let
      digit = elemAt (chars "0123456789abcdef");
      go = x: if x < 16 then digit x else go (x / 16) + digit (mod x 16);
    in
    go n;

  # IPv4: one integer.
  parseV4 = s: foldl' (acc: o: acc * 256 + builtins.fromJSON o) 0 (splitOn "\\." s);
  showV4 =
    n:
    builtins.concatStringsSep "." (
      map toString [
        (mod (n / 16777216) 256)
        (mod (n / 65536) 256)
        (mod (n / 256) 256)
        (mod n 256)
      ]
    );

  # IPv6: a list of eight 16-bit groups ("::" expanded).
  parseV6 =
    s:
    let
      halves = splitOn "::" s;
      groups = h: if h == "" then [ ] else map fromHex (splitOn ":" h);
      head' = groups (elemAt halves 0);
      tail' = if length halves > 1 then groups (elemAt halves 1) else [ ];
      zeros = genList (_: 0) (8 - length head' - length tail');
    in
    head' ++ zeros ++ tail';
  # RFC 5952, as Rust prints: the longest run (two or more) of zero groups, first on a tie, becomes "::".
  showV6 =
    gs:
    let
      runAt =
        i: if i < 8 && elemAt gs i == 0 then 1 + runAt (i + 1) else 0;
      best = foldl' (
        acc: i:
        let
          r = runAt i;
        in
        if r > acc.len then
          {
            start = i;
            len = r;
          }
        else
          acc
      ) {
        start = -1;
        len = 1;
      } (genList (i: i) 8);
      show = list: builtins.concatStringsSep ":" (map toHex list);
      slice = from: to: genList (i: elemAt gs (from + i)) (to - from);
    in
    if best.start < 0 then
      show gs
    else
      show (slice 0 best.start) + "::" + show (slice (best.start + best.len) 8);

  splitCidr =
    cidr:
    let
      parts = splitOn "/" cidr;
    in
    {
      address = elemAt parts 0;
      prefix = builtins.fromJSON (elemAt parts 1);
    };

  # The n-th address after the network address of `cidr` (host bits cleared first).
  nthHost =
    cidr: n:
    let
      c = splitCidr cidr;
    in
    if isIpv6 c.address then
      let
        gs = parseV6 c.address;
        masked = genList (
          i:
          let
            bits = c.prefix - 16 * i;
            keep = if bits >= 16 then 16 else if bits <= 0 then 0 else bits;
            g = elemAt gs i;
          in
          g - mod g (pow2 (16 - keep))
        ) 8;
        # Add n from the last group up, carrying.
        added =
          (foldl' (
            acc: i:
            let
              sum = elemAt masked i + acc.carry;
            in
            {
              carry = sum / 65536;
              out = [ (mod sum 65536) ] ++ acc.out;
            }
          ) {
            carry = n;
            out = [ ];
          } (genList (i: 7 - i) 8)).out;
      in
      showV6 added
    else
      let
        ip = parseV4 c.address;
        network = ip - mod ip (pow2 (32 - c.prefix));
      in
      showV4 (mod (network + n) 4294967296);
in
{
  inherit
    isIpv6
    nthHost
    parseV4
    parseV6
    showV4
    showV6
    splitCidr
    ;
  # An address as Rust prints it (canonical IPv6, IPv4 unchanged).
  canonical = s: if isIpv6 s then showV6 (parseV6 s) else showV4 (parseV4 s);
  # A CIDR as Rust's ipnet prints it: canonical address, prefix unchanged (host bits kept).
  canonicalCidr =
    cidr:
    let
      c = splitCidr cidr;
      address = if isIpv6 c.address then showV6 (parseV6 c.address) else showV4 (parseV4 c.address);
    in
    "${address}/${toString c.prefix}";
  # "host" or "[v6]" for a URL.
  urlHost = s: if isIpv6 s then "[${showV6 (parseV6 s)}]" else s;
}
