# Sourced by tools/images/build.sh with the argument `conformance` (`make conformance`),
# after the product's images: it uses build.sh's helpers and $refs.
# Under the names and tags the suite asks for (test/utils/image/manifest.go), in this
# registry's e2e-test-images/ and k8s/ namespaces, which the repo list written to
# $e2e_repo_list maps the suite's registries to (KUBE_TEST_REPO_LIST). Each is also
# tagged <tag>-<content hash>, so one already pushed is not rebuilt.
e2e_repo_list="$cache/images/e2e-repo-list.yaml"
e2e_debs="$cache/images/debs"

e2e_image() { # e2e_image NAME TAG INPUT... -- ROOTFS_FUNCTION UMOCI_CONFIG_ARGS...
  local name=$1 tag=$2 inputs=() hash; shift 2
  while [ "$1" != -- ]; do inputs+=("$1"); shift; done; shift
  local make_rootfs=$1; shift
  hash="$(content_hash "${inputs[@]}" "$here/conformance.sh")"
  if ! in_registry "$name" "$tag-$hash"; then
    log "building $name:$tag"
    local rootfs; rootfs="$(mktemp -d)"
    "$make_rootfs" "$rootfs"
    publish "$name" "$tag-$hash" "$rootfs" "$@"
    rm -rf "$rootfs"
  fi
  e2e_alias "$registry/$name:$tag-$hash" "$name" "$tag"
}

e2e_alias() { # e2e_alias SOURCE_REF NAME TAG: the same image under the suite's name
  skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$1" "docker://$registry/$2:$3"
}

e2e_debian() { # e2e_debian PACKAGE: Debian's package file, downloaded once, to unpack into an image
  mkdir -p "$e2e_debs"
  local deb; deb="$(ls "$e2e_debs/$1"_*.deb 2>/dev/null | tail -n 1)"
  if [ -z "$deb" ]; then
    (cd "$e2e_debs" && apt-get download -qq "$1" 2>/dev/null)
    deb="$(ls "$e2e_debs/$1"_*.deb | tail -n 1)"
  fi
  echo "$deb"
}

# agnhost's own image is Alpine with these tools; here Debian's, beside busybox's applets.
agnhost_tools=(/usr/bin/bash /usr/bin/curl /usr/bin/dig /usr/bin/socat /usr/bin/getent /bin/nc.openbsd)

agnhost_rootfs() { # agnhost_rootfs DIR: the program at /agnhost with the tools and files its tests use
  local rootfs=$1
  busybox_rootfs "$rootfs"
  mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib/x86_64-linux-gnu" "$rootfs/uploads"
  cp "${agnhost_tools[@]}" "$rootfs/usr/bin/"
  ln -s nc.openbsd "$rootfs/usr/bin/nc"  # the tests' `nc -v -z`
  # busybox's shell runs its own applets before any on PATH (its nc has no -v): bash is /bin/sh
  ln -sf ../usr/bin/bash "$rootfs/bin/sh"
  cp "$conformance_bin/agnhost" "$rootfs/agnhost" && ln -s agnhost "$rootfs/agnhost-2"
  cp "$node_bin/coredns" "$rootfs/coredns"
  cp "$test_images/agnhost/porter/localhost.crt" "$test_images/agnhost/porter/localhost.key" "$rootfs/"
  echo "user-defined-in-image:x:1000:1000::/nonexistent:/bin/sh" >>"$rootfs/etc/passwd"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$rootfs/etc/group"
  # The image volume test reads it through kitten's image and looks for upstream's base by name.
  printf '%s\n' 'NAME="vcportal e2e stand-in"' 'ID=vcportal-e2e' \
    'PRETTY_NAME="vcportal offline build of an e2e test image (upstream: Alpine Linux)"' >"$rootfs/etc/os-release"
  copy_shared_libraries "$rootfs"
}

webserver_rootfs() { # webserver_rootfs DIR IMAGE: agnhost serving kitten's or nautilus's files
  agnhost_rootfs "$1"
  cp "$test_images/$2/html/"* "$1/"
}
kitten_rootfs() { webserver_rootfs "$1" kitten; }
nautilus_rootfs() { webserver_rootfs "$1" nautilus; }

# Debian's busybox ash (1.35, and 1.37 too) drops environment variables whose names are
# not identifiers, which Kubernetes allows and the suite reads back with `sh -c env`; bash
# passes them on. Other tests run `/bin/sh` and expect ash's exact messages ("/bin/sh:
# can't create /file: Read-only file system"). So `sh` found on PATH is bash, first in
# /usr/local/bin, and /bin/sh stays busybox's ash.
e2e_busybox_rootfs() {
  busybox_rootfs "$1"
  mkdir -p "$1/usr/bin" "$1/usr/local/bin" "$1/usr/lib/x86_64-linux-gnu"
  cp /usr/bin/bash "$1/usr/bin/" && ln -s ../../bin/bash "$1/usr/local/bin/sh"
  copy_shared_libraries "$1"
}

nonewprivs_rootfs() {
  busybox_rootfs "$1"
  mkdir -p "$1/usr/local/bin"
  install -m 4755 "$conformance_bin/nonewprivs" "$1/usr/local/bin/nnp"
}

sample_apiserver_rootfs() {
  base_files "$1"
  cp "$conformance_bin/sample-apiserver" "$1/sample-apiserver"
}

etcd_rootfs() { # the aggregator test runs /usr/local/bin/etcd as the sample API server's storage
  base_files "$1"
  install -D "$conformance_bin/etcd" "$1/usr/local/bin/etcd"
}

nginx_conf() { cat <<'CONF'
daemon off;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server { listen 80; root /usr/share/nginx/html; }
}
CONF
}

nginx_rootfs() { # Debian's nginx serving a page on port 80, as the upstream image does
  local rootfs=$1
  busybox_rootfs "$rootfs"
  dpkg-deb -x "$(e2e_debian nginx)" "$rootfs"
  dpkg-deb -x "$(e2e_debian nginx-common)" "$rootfs"
  rm -rf "$rootfs/usr/share/doc" "$rootfs/etc/nginx/sites-"* "$rootfs/etc/init.d" "$rootfs/etc/logrotate.d" \
    "$rootfs/etc/ufw" "$rootfs/lib/systemd"
  nginx_conf >"$rootfs/etc/nginx/nginx.conf"
  mkdir -p "$rootfs/usr/share/nginx/html" "$rootfs/usr/lib/x86_64-linux-gnu"
  echo '<h1>Welcome to nginx!</h1>' >"$rootfs/usr/share/nginx/html/index.html"
  copy_shared_libraries "$rootfs"
}

conformance_images() {
  "$root/scripts/services.sh" install conformance
  conformance_bin="$("$root/tools/kube/build.sh" conformance | tail -n 1)"
  test_images="$(cd "$root/tools/kube/k8s" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images"
  local e2e=e2e-test-images page
  local agnhost=("$conformance_bin/agnhost" "$node_bin/coredns" "${agnhost_tools[@]}")
  e2e_image "$e2e/agnhost" 2.66.1 "${agnhost[@]}" -- agnhost_rootfs \
    --config.entrypoint /agnhost --config.cmd pause --config.env PATH=/usr/bin:/bin
  e2e_alias "$registry/$e2e/agnhost:2.66.1" "$e2e/agnhost" 2.55  # the suite's "previous" agnhost
  e2e_alias "$registry/$e2e/agnhost:2.66.1" "$e2e/glibc-dns-testing" 2.1.1  # glibc, dig and getent
  for page in kitten nautilus; do
    e2e_image "$e2e/$page" 1.8 "${agnhost[@]}" "$test_images/$page/html/"* -- "${page}_rootfs" \
      --config.entrypoint /agnhost --config.cmd test-webserver --config.env PATH=/usr/bin:/bin
  done
  e2e_image "$e2e/nonewprivs" 1.4 "$conformance_bin/nonewprivs" /bin/busybox -- nonewprivs_rootfs \
    --config.cmd nnp --config.env PATH=/usr/local/bin:/bin
  e2e_image "$e2e/sample-apiserver" 1.29.2 "$conformance_bin/sample-apiserver" -- sample_apiserver_rootfs \
    --config.entrypoint /sample-apiserver
  e2e_image k8s/etcd 3.7.0-0 "$conformance_bin/etcd" -- etcd_rootfs --config.entrypoint /usr/local/bin/etcd
  e2e_image "$e2e/nginx" 1.28.0-2 "$(e2e_debian nginx)" "$(e2e_debian nginx-common)" /bin/busybox -- nginx_rootfs \
    --config.entrypoint /usr/sbin/nginx --config.env PATH=/usr/sbin:/bin --config.exposedports 80/tcp
  e2e_alias "$registry/$e2e/nginx:1.28.0-2" "$e2e/nginx" 1.27.0-2  # the suite's older nginx: Debian has one
  e2e_image "$e2e/nonroot" 1.5 /bin/busybox -- busybox_rootfs --config.user 1234 --config.env PATH=/bin
  e2e_image "$e2e/busybox" 1.37.0-2 /bin/busybox /usr/bin/bash -- e2e_busybox_rootfs \
    --config.cmd sh --config.env PATH=/usr/local/bin:/bin:/usr/bin
  e2e_alias "$(grep "/pause:" <<<"$refs")" k8s/pause 3.10.2
  cat >"$e2e_repo_list.tmp" <<LIST
# Written by tools/images/build.sh conformance: the e2e suite's registries, all in this one.
promoterE2eRegistry: $registry/$e2e
gcRegistry: $registry/k8s
gcEtcdRegistry: $registry/k8s
dockerLibraryRegistry: $registry/library
buildImageRegistry: $registry/build-image
sigStorageRegistry: $registry/sig-storage
privateRegistry: $registry/private
invalidRegistry: invalid.registry.k8s.io/invalid
LIST
  mv "$e2e_repo_list.tmp" "$e2e_repo_list"
  log "the e2e suite's images are in $registry; its repo list: $e2e_repo_list"
}

