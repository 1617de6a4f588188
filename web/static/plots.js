// Draws the Plotly figures a page embeds as JSON (<script type="application/json"
// class="plotly-figure">), and makes points that carry a commit sha open that commit's page.
// No figure code runs inline: the Content-Security-Policy allows only this server's scripts.
(function () {
  "use strict";

  function commitUrl(node, sha) {
    // The server's commit URL with a percent-encoded {sha} placeholder; the sha is encoded too.
    return node.dataset.commitUrl.replace("%7Bsha%7D", encodeURIComponent(sha));
  }

  function draw(node) {
    var target = document.getElementById(node.dataset.target);
    if (!target || !window.Plotly) {
      return;
    }
    var spec = JSON.parse(node.textContent);
    target.textContent = "";
    var config = {
      responsive: true,
      displaylogo: false,
      displayModeBar: true,
      toImageButtonOptions: { format: "png", filename: node.dataset.target, scale: 2 },
    };
    window.Plotly.newPlot(target, spec.data, spec.layout, config).then(function () {
      target.dataset.drawn = "true";
    });
    if (node.dataset.commitUrl) {
      target.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        if (!point || !point.data.meta || point.data.meta.link !== "commit" || !point.customdata) {
          return;
        }
        var sha = Array.isArray(point.customdata) ? point.customdata[0] : point.customdata;
        window.location.assign(commitUrl(node, String(sha)));
      });
    }
  }

  document.querySelectorAll('script.plotly-figure[type="application/json"]').forEach(draw);
})();
