# The namespace tests share the site helpers with the demo: scripts/lib/sites.sh.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib" && pwd)/sites.sh"
