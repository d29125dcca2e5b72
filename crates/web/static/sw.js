// PassMe's service worker: shows a push message (decrypted by the browser) and opens its link,
// on this site only, when it is clicked. It caches nothing.
self.addEventListener('push', function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { body: event.data ? event.data.text() : '' }; }
  var url = typeof data.url === 'string' && data.url.charAt(0) === '/' && data.url.charAt(1) !== '/' ? data.url : '/';
  event.waitUntil(self.registration.showNotification(String(data.title || 'PassMe AI'), {
    body: String(data.body || ''),
    tag: String(data.id || ''),
    icon: '/favicon.svg',
    data: { url: url }
  }));
});

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  event.waitUntil(self.clients.openWindow((event.notification.data && event.notification.data.url) || '/'));
});
