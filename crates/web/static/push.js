// Turns on push notifications for this browser from the messages page: registers the service
// worker, subscribes with the server's VAPID key and registers the subscription. Without
// JavaScript or push support the button stays hidden and the page says so.
(function (d) {
  var button = d.getElementById('push-on'), status = d.getElementById('push-status');
  if (!button || !('serviceWorker' in navigator) || !('PushManager' in window)) return;
  var unsupported = d.getElementById('push-unsupported');
  if (unsupported) unsupported.hidden = true;
  button.hidden = false;
  function say(key) { if (status) status.textContent = button.getAttribute('data-' + key) || key; }
  function key(b64) {
    var s = (b64 + '==='.slice((b64.length + 3) % 4)).replace(/-/g, '+').replace(/_/g, '/');
    var raw = atob(s), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  button.addEventListener('click', function () {
    button.disabled = true;
    say('working');
    Notification.requestPermission().then(function (permission) {
      if (permission !== 'granted') throw new Error('denied');
      return navigator.serviceWorker.register('/sw.js');
    }).then(function (registration) {
      return fetch('/api/v1/push/key', { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (k) {
        return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key(k.key) });
      });
    }).then(function (subscription) {
      var device = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || '';
      return fetch('/api/v1/push/subscriptions', {
        method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ subscription: subscription.toJSON(), device: device })
      });
    }).then(function (r) {
      if (!r.ok) throw new Error('refused');
      location.href = '/account/messages?done=device_added';
    }).catch(function (e) {
      button.disabled = false;
      say(e && e.message === 'denied' ? 'denied' : 'failed');
    });
  });
})(document);
