"""The HTML report's one style sheet, inline in every page (nothing is fetched)."""

CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--alt:#f9fafb;
--pass:#15803d;--fail:#b91c1c;--warn:#b45309}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header,main,nav,footer{max-width:1200px;margin:0 auto;padding:0 20px}
h1{font-size:22px;margin:20px 0 8px}h2{font-size:18px;margin:28px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.mono,pre,.timeline{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:var(--muted)}
.badge{font-size:13px;padding:2px 10px;border-radius:12px;color:#fff;background:var(--muted);
vertical-align:middle}
.badge.passed{background:var(--pass)}.badge.failed{background:var(--fail)}
.badge.degraded,.badge.interrupted{background:var(--warn)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
.facts dt{color:var(--muted)}.facts dd{margin:0}
pre{white-space:pre-wrap;word-break:break-word;margin:6px 0}
.verdict{background:var(--alt);padding:8px 12px;border-radius:6px}
nav{position:sticky;top:0;background:var(--bg);border-bottom:1px solid var(--line);
padding-top:6px;padding-bottom:6px;z-index:1}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--alt);font-weight:600}
td{word-break:break-word}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:var(--alt)}
.pass{color:var(--pass);font-weight:700}.fail{color:var(--fail);font-weight:700}
.sub{padding-left:14px;color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.card .label{color:var(--muted);font-size:12px}.card .value{font-size:18px;font-weight:600}
.chart-box{margin:8px 0 20px}.chart-box figcaption{font-weight:600}
.chart{width:100%;height:auto}
.chart .plot{fill:#fff;stroke:var(--line)}.chart .grid{stroke:#f0f0f0}
.chart .tick{font-size:11px;fill:var(--muted)}.chart .axis-label{font-size:12px;fill:var(--fg)}
.chart .series{fill:none;stroke-width:1.6;stroke-linejoin:round}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;gap:16px;flex-wrap:wrap}
.swatch{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.timeline{list-style:none;padding:0;margin:0;font-size:12px}
.warnings li{color:var(--warn)}
details summary{cursor:pointer;font-family:ui-monospace,monospace;font-size:12px}
footer{color:var(--muted);font-size:12px;margin:30px auto 20px}
.timeline li.bad{color:var(--fail);font-weight:600}
.traceback{background:var(--alt);padding:6px 10px;border-radius:6px;font-size:12px;
max-height:24em;overflow:auto}
"""
