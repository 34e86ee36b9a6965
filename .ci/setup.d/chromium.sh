# Sourced by .ci/run before the tests: headless Chromium for the docs-site tests
# (tests/docs_site drive /usr/bin/chromium over the DevTools protocol; without it they skip, saying why).
# Installs Debian's `chromium` only where no Chromium is present; never fails the run on its own.
if [ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ] || [ -n "${ENGINE_CHROMIUM:-}" ]; then
  echo "chromium: present"
elif command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then apt_get="apt-get"; elif command -v sudo >/dev/null 2>&1; then apt_get="sudo -n apt-get"; else apt_get=""; fi
  if [ -n "$apt_get" ]; then
    echo "chromium: installing with apt-get"
    $apt_get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
      || echo "chromium: apt-get install failed; the browser tests will skip"
  else
    echo "chromium: not installed and no root; the browser tests will skip"
  fi
else
  echo "chromium: no apt-get here; the browser tests will skip"
fi
