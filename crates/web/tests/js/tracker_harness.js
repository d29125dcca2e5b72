// Runs the real tracker (given on standard input) against a minimal browser: location, history, document,
// navigator.sendBeacon. Drives a single-page app's navigation and prints every beacon as JSON.
const fs = require('fs');
const vm = require('vm');

const sent = [];
const listeners = {};
const location = { href: 'http://passme.test/start' };
const document = {
  currentScript: { getAttribute: (n) => (n === 'data-site' ? 'passme' : null), src: 'http://passme.test/t.js' },
  referrer: 'https://www.google.com/search?q=passme',
  visibilityState: 'visible',
  addEventListener: (e, f) => { listeners['document:' + e] = f; },
};
const window = { addEventListener: (e, f) => { listeners['window:' + e] = f; } };
const history = {
  pushState(state, title, url) { location.href = new URL(url, location.href).href; },
  replaceState(state, title, url) { location.href = new URL(url, location.href).href; },
};
const navigator = { sendBeacon: (url, blob) => { sent.push({ url, type: blob.type, events: JSON.parse(blob.text) }); return true; } };
class Blob { constructor(parts, options) { this.text = parts.join(''); this.type = options.type; } }
const context = {
  document, window, history, location, navigator, Blob, JSON, Date, URL,
  setTimeout: () => 1, clearTimeout: () => {},
  fetch: () => { throw new Error('fetch is only the fallback when sendBeacon is missing'); },
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(0, 'utf8'), context);

history.pushState({}, '', '/spa/one');
history.pushState({}, '', '/spa/two#section');
history.replaceState({}, '', '/spa/two#other'); // the same page: not a new view
location.href = 'http://passme.test/spa/one';
listeners['window:popstate']();
document.visibilityState = 'hidden';
listeners['document:visibilitychange']();
// Twelve quick navigations: ten go at once, the rest when the page is hidden.
for (let i = 0; i < 12; i++) history.pushState({}, '', '/burst/' + i);
listeners['window:pagehide']();
console.log(JSON.stringify(sent));
