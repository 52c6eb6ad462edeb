# shellcheck shell=bash
# Sourced by the benchmark scripts: the example nginx job (jobs/examples/nginx.toml) over
# generated logs, so every benchmark measures the job users run, not a copy of it.
#
#   nginx_job GLOB SINK_LINES [SOURCE_LINES]
#
# prints a job named "nginx" reading GLOB (gen-nginx-logs' web-N folders name the
# hosts), with SOURCE_LINES added to its [source], the example's [parse], [window],
# metrics and rules as they are, and one [[sink]] of SINK_LINES printing every series.
nginx_job() {
    local example
    example="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/jobs/examples/nginx.toml"
    printf 'name = "nginx"\n[source]\nkind = "file"\ninclude = ["%s"]\n' "$1"
    printf '%s\n' "host = { path_regex = '/(?P<host>web-[0-9]+)/' }" "${3:-}"
    # From [parse] up to (not including) the example's first [[sink]].
    sed -n '/^\[parse\]/,/^\[\[sink\]\]/p' "$example" | sed '$d'
    printf '[[sink]]\n%s\nseries = "all"\n' "$2"
}
