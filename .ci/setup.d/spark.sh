# Sourced by .ci/run after `pip install -e '.[test]'`, before the tests: the Spark backend's
# suite (tests/spark, the `spark` cases of tests/contract) needs Java 17+ and the `spark` extra.
# Installs Debian's openjdk-17-jre-headless only where no `java` is found; the tests start their own
# standalone cluster (tests/support_spark.py) lazily, once per run.
if command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ]; then
  echo "spark: java present ($(command -v java || echo "$JAVA_HOME"))"
elif command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then apt_get="apt-get"; elif command -v sudo >/dev/null 2>&1; then apt_get="sudo -n apt-get"; else apt_get=""; fi
  if [ -n "$apt_get" ]; then
    echo "spark: installing openjdk-17-jre-headless with apt-get"
    $apt_get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null 2>&1 \
      || echo "spark: apt-get install failed; the Spark tests will fail to start a JVM"
  else
    echo "spark: no java and no root to install it"
  fi
else
  echo "spark: no java and no apt-get"
fi
python -m pip install --quiet -e '.[spark]'
