// PassMe's first-party tracker: page views only (address, referrer, time), batched, sent to
// PassMe itself. It sets no cookie; the server decides on a visitor cookie from your consent.
(function (d, w) {
  var s = d.currentScript, site = s.getAttribute('data-site'), q = [], timer, last;
  var api = s.getAttribute('data-api') || s.src.replace(/\/t\.js.*$/, '') + '/api/v1/events';
  function flush() {
    clearTimeout(timer);
    if (!q.length) return;
    var body = JSON.stringify(q);
    q = [];
    if (!(navigator.sendBeacon && navigator.sendBeacon(api, new Blob([body], { type: 'text/plain' }))))
      fetch(api, { method: 'POST', body: body, keepalive: true, credentials: 'include', headers: { 'Content-Type': 'text/plain' } });
  }
  function view() {
    var url = location.href.split('#')[0];
    if (url === last) return;
    q.push({ site: site, url: url, referrer: last || d.referrer || null, ts: Date.now() });
    last = url;
    if (q.length >= 10) flush(); else { clearTimeout(timer); timer = setTimeout(flush, 1000); }
  }
  ['pushState', 'replaceState'].forEach(function (m) {
    var original = history[m];
    history[m] = function () { var r = original.apply(this, arguments); view(); return r; };
  });
  w.addEventListener('popstate', view);
  w.addEventListener('pagehide', flush);
  d.addEventListener('visibilitychange', function () { if (d.visibilityState === 'hidden') flush(); });
  view();
})(document, window);
