"""What every report page carries besides its content: the style sheet and a script that
marks on <body> how many embedded images decoded."""

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;
max-width:1250px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 6px;vertical-align:top;text-align:left}
table.data td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.data td.text{white-space:normal;min-width:6em}
div.wide{overflow-x:auto}
table.data td:first-child{text-align:left}
table.kv th{background:#f6f6f6;font-weight:600}
tr.wrong td{background:#fdd}.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5em 1em}
li.bad{color:#8a1c1c}tr.flagged td{color:#777}
.note{color:#555;font-size:.9em}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
nav a{margin-right:1em}
"""


# Sets data-images on <body> once every image has decoded ("3/3"): lets a headless browser
# (and the tests) check that the embedded figures load. No network, no other effect.
LOAD_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});
</script>"""
