#!/usr/bin/env bash
# Render a report page with headless Chromium to a PNG, to look at it as a reader would.
#   bash scripts/screenshot_report.sh runs/demo/index.html [out.png] [width,height]
# Needs Debian's `chromium` (apt-get install -y chromium); prints where the PNG is.
set -euo pipefail
page=${1:?usage: screenshot_report.sh PAGE.html [OUT.png] [WIDTH,HEIGHT]}
out=${2:-${page%.html}.png}
size=${3:-1280,2400}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "error: chromium is not installed (apt-get install -y chromium)" >&2; exit 2; }
[ -f "$page" ] || { echo "error: no page at $page" >&2; exit 2; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$size" \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$page")" >/dev/null 2>&1
echo "screenshot: $out"
