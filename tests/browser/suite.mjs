// PassMe's pages in a real browser (Debian's chromium, driven by playwright-core), as a person
// uses them: sign-up, the confirmation mail from the outbox, sign-in with remember-me,
// preferences, consent choices and the cookies each leaves, the staff pages; in Danish and
// English, on a desktop and on a 360 px phone. Every page visited is checked with axe-core (no
// serious or critical violation), must not be wider than its viewport, and is screenshotted.
// Run by scripts/browser, which starts the server and passes its address in the environment.

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(`${process.env.PASSME_BROWSER_MODULES}/`);
const { chromium } = require('playwright-core');
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const BASE = process.env.PASSME_BASE;
const OUTBOX = process.env.PASSME_OUTBOX;
const ADMIN_LINK = process.env.PASSME_ADMIN_LINK;
const SHOTS = process.env.PASSME_SHOTS;
const PROVIDER_ACCOUNTS = process.env.PASSME_PROVIDER_ACCOUNTS;
const PASSWORD = 'correct horse battery staple';
const ADMIN_PASSWORD = 'a staff password nobody guesses';

const DEVICES = {
  desktop: { viewport: { width: 1280, height: 900 } },
  phone: { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
};
const NECESSARY = ['__Host-session', '__Host-csrf', '__Host-consent'];
const PREFERENCES = ['__Host-remember', '__Host-prefs'];

let passed = 0;
const failures = [];

function check(name, condition, detail = '') {
  if (condition) {
    passed += 1;
  } else {
    failures.push(`${name}${detail ? `: ${detail}` : ''}`);
    console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
}

/** The checks every page gets: fits its viewport, no serious accessibility problem, a screenshot. */
async function inspect(page, label) {
  const fit = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > width + 1 && getComputedStyle(e).position !== 'absolute')
      .filter((e) => !e.closest('.table-wrap'))
      .slice(0, 3)
      .map((e) => `${e.tagName.toLowerCase()}${e.className ? `.${e.className}` : ''} (${Math.round(e.getBoundingClientRect().right)} px)`);
    // The policy's tables fit their box too: no sideways scrolling to read a recipient.
    const tables = [...document.querySelectorAll('.table-wrap')]
      .filter((w) => w.querySelector('table.stack') && w.scrollWidth > w.clientWidth + 1)
      .map((w) => `${w.getAttribute('aria-label')} (${w.scrollWidth} px in ${w.clientWidth})`);
    return { scroll: document.documentElement.scrollWidth, width, wide, tables };
  });
  check(`${label}: fits ${fit.width} px`, fit.scroll <= fit.width, `${fit.scroll} px wide; ${fit.wide.join(', ')}`);
  check(`${label}: tables fit their box`, fit.tables.length === 0, fit.tables.join(', '));
  await page.addScriptTag({ content: axeSource });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 2).map((n) => n.target.join(' ')).join('; ')}`);
  });
  check(`${label}: axe finds no serious or critical violation`, violations.length === 0, violations.join(' | '));
  await page.screenshot({ path: path.join(SHOTS, `${label.replaceAll(' ', '-')}.png`), fullPage: true });
}

async function visit(page, url, label, status = 200) {
  const response = await page.goto(`${BASE}${url}`);
  check(`${label}: answers ${status}`, response.status() === status, `got ${response.status()} for ${url}`);
  await inspect(page, label);
  return response;
}

/** PassMe's cookies (the identity provider's own, on its own host, are not ours to count). */
async function cookieNames(context) {
  return (await context.cookies(BASE)).map((c) => c.name).sort();
}

/** The link with `?token=` in the newest mail to `to` (quoted-printable undone). */
async function mailedLink(to, subjectPart) {
  for (let i = 0; i < 100; i += 1) {
    const mails = fs
      .readdirSync(OUTBOX)
      .map((f) => path.join(OUTBOX, f))
      .map((f) => ({ f, text: fs.readFileSync(f, 'utf8'), at: fs.statSync(f).mtimeMs }))
      .map((m) => ({ ...m, text: m.text.replace(/=\r?\n/g, '').replace(/=3D/g, '=') }))
      .filter((m) => m.text.includes(`To: ${to}`) && m.text.includes(subjectPart))
      .sort((a, b) => b.at - a.at);
    const link = mails[0]?.text.match(/https?:\/\/\S+token=[A-Za-z0-9_.-]+/);
    if (link) return link[0];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no mail to ${to} with a link (${subjectPart})`);
}

/** The one-click unsubscribe address (List-Unsubscribe) of the newest mail to `to` about `subjectPart`. */
async function unsubscribeLink(to, subjectPart) {
  for (let i = 0; i < 100; i += 1) {
    const mails = fs
      .readdirSync(OUTBOX)
      .map((f) => path.join(OUTBOX, f))
      .map((f) => ({ text: fs.readFileSync(f, 'utf8').replace(/\r?\n[ \t]+/g, ' '), at: fs.statSync(f).mtimeMs }))
      .filter((m) => m.text.includes(`To: ${to}`) && m.text.includes(subjectPart))
      .sort((a, b) => b.at - a.at);
    const link = mails[0]?.text.match(/List-Unsubscribe: <(https?:\/\/[^>]+)>/);
    if (link) return link[1];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no mail to ${to} with List-Unsubscribe (${subjectPart})`);
}

/** Runs `steps` on a new page; when one throws, says where the page was and what it showed. */
async function onPage(browser, options, label, steps) {
  const context = await browser.newContext({ ...options, bypassCSP: true });
  const page = await context.newPage();
  try {
    await steps(page, context);
  } catch (e) {
    const main = await page.locator('main').innerText().catch(() => '');
    check(`${label}: ${e.message.split('\n')[0]}`, false, `at ${page.url()}: ${main.slice(0, 300)}`);
    await page.screenshot({ path: path.join(SHOTS, `${label.replaceAll(' ', '-')}-FAILED.png`), fullPage: true }).catch(() => {});
  } finally {
    await context.close();
  }
}

function locale(lang) {
  return lang === 'da' ? 'da-DK' : 'en-GB';
}

/** One person's way through the service, in one language on one device. */
/** Walks the identity provider's own login and consent pages until it sends the browser back. */
async function throughProvider(page, login) {
  for (let i = 0; i < 6 && !page.url().startsWith(BASE); i += 1) {
    if (await page.locator('input[name="login"]').count()) {
      await page.fill('input[name="login"]', login);
      await page.fill('input[name="password"]', 'any');
    }
    const before = page.url();
    await Promise.all([page.waitForURL((url) => url.href !== before), page.locator('button[type="submit"]').first().click()]);
  }
}

async function journey(browser, lang, device) {
  await onPage(browser, { ...DEVICES[device], locale: locale(lang) }, `${lang} ${device} journey`, (page, context) =>
    journeySteps(page, context, lang, device));
}

async function journeySteps(page, context, lang, device) {
  const label = (name) => `${lang} ${device} ${name}`;
  const email = `${lang}-${device}@example.com`;

  await visit(page, `/?lang=${lang}`, label('home'));
  check(label('home: title is the service name once'), (await page.title()) === 'PassMe AI', await page.title());
  const reject = page.locator('section.consent button[value="none"]');
  const box = await reject.boundingBox();
  check(label('banner: refusing is on the first screen'), box && box.y + box.height <= DEVICES[device].viewport.height, JSON.stringify(box));
  await reject.click();
  await page.waitForLoadState();
  check(label('banner: gone once answered'), (await page.locator('section.consent').count()) === 0);
  check(label('banner: a confirmation is shown'), (await page.locator('.done').count()) === 1);
  const afterReject = await cookieNames(context);
  check(label('cookies after "reject all": necessary only'), afterReject.every((c) => NECESSARY.includes(c)), afterReject.join(', '));

  await visit(page, `/privacy?lang=${lang}`, label('privacy'));
  const links = await page.locator('main a[href*="datatilsynet.dk"], main a[href*="stripe.com"]').count();
  check(label('privacy: addresses are links'), links >= 2, `${links} links`);
  await visit(page, `/cookies?lang=${lang}`, label('cookies'));
  await page.locator('main input[name="preferences"]').check();
  await page.locator('main button[value="custom"]').click();
  await page.waitForLoadState();
  check(label('cookies: saving confirms'), (await page.locator('.done').count()) === 1);
  await inspect(page, label('cookies-saved'));

  await visit(page, `/signup?lang=${lang}`, label('signup'));
  await page.fill('#f-email', email);
  await page.fill('#f-password', 'short');
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  check(label('signup: a weak password is explained beside its field'), (await page.locator('#f-password-error').count()) === 1);
  await inspect(page, label('signup-refused'));
  await page.fill('#f-password', PASSWORD);
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  await inspect(page, label('signup-sent'));

  const verify = await mailedLink(email, 'Subject:');
  await page.goto(verify);
  await inspect(page, label('verify'));
  await page.locator('main form button[type="submit"]').click();
  await page.waitForURL(/\/account/);
  await inspect(page, label('account'));
  check(label('account: sessions read as a device'), /(Chrome|Chromium) (on|på) Linux/.test(await page.locator('.sessions').innerText()));
  check(label('account: password forms name their account'), (await page.locator('form[action="/account/password"] input[autocomplete="username"]').count()) === 1);

  // Link the identity provider, through its real login and consent pages, then consent to
  // personalisation: the page shows what the provider sent.
  await page.locator('form[action="/account/links/example/start"] button').click();
  await page.waitForURL((url) => !url.href.startsWith(BASE));
  await throughProvider(page, `${lang}-${device}`);
  await page.waitForURL(/done=linked/);
  check(label('linking: the linked provider is listed'), (await page.locator('ul.links li').count()) === 1);
  await inspect(page, label('account-linked'));
  await page.locator('form[action="/account/personalisation"] button').click();
  await page.waitForURL(/done=personalisation_on/);
  check(label('personalisation: what the provider sent is shown'), /Software/.test(await page.locator('dl.received').innerText()));
  await inspect(page, label('account-personalised'));

  // A support case from the contact form, signed in: listed on the person's own page.
  await visit(page, `/contact?lang=${lang}`, label('contact'));
  await page.fill('#f-subject', `Browser suite case ${lang} ${device}`);
  await page.fill('#f-message', 'Hello <b>support</b>: the invoice shows the wrong name.');
  await page.locator('form[action="/contact"] button[type="submit"]').click();
  await page.waitForLoadState();
  await inspect(page, label('contact-sent'));
  await visit(page, `/account/support?lang=${lang}`, label('support-cases'));
  await page.locator('ul.cases a').first().click();
  await page.waitForLoadState();
  check(label('support: the case shows the message as text'), (await page.locator('ol.thread').innerText()).includes('<b>support</b>'));
  await inspect(page, label('support-case'));
  await page.goto(`${BASE}/account?lang=${lang}`);

  await page.locator('form[action="/logout"] button').click();
  await page.waitForLoadState();
  await visit(page, `/login?lang=${lang}`, label('login'));
  check(label('login: signing in with the linked provider is offered'), (await page.locator('form[action="/login/example"] button').count()) === 1);
  await page.fill('#f-email', email);
  await page.fill('#f-password', PASSWORD);
  await page.check('#f-remember');
  await page.locator('main form[action="/login"] button[type="submit"]').click();
  await page.waitForURL(/\/account/);
  const signedIn = await cookieNames(context);
  check(label('cookies signed in with remember-me'), signedIn.includes('__Host-session') && signedIn.includes('__Host-remember'), signedIn.join(', '));
  check(label('cookies: nothing beyond the consented categories'), signedIn.every((c) => NECESSARY.includes(c) || PREFERENCES.includes(c)), signedIn.join(', '));
  await context.clearCookies({ name: '__Host-session' });
  await page.goto(`${BASE}/account?lang=${lang}`);
  check(label('remember-me resumes after the session cookie is gone'), new URL(page.url()).pathname === '/account', page.url());
  const login = await page.goto(`${BASE}/login?lang=${lang}`);
  check(label('login: a signed-in visitor goes on to the account'), new URL(page.url()).pathname === '/account', `${login.status()} ${page.url()}`);

  await visit(page, `/preferences?lang=${lang}`, label('preferences'));
  await page.check('#p-theme-dark');
  await page.check('#p-text-large');
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  check(label('preferences: saving confirms'), (await page.locator('.done').count()) === 1);
  check(label('preferences: dark theme applied'), (await page.locator('html[data-theme="dark"]').count()) === 1);
  await inspect(page, label('preferences-dark'));
  await visit(page, `/account?lang=${lang}`, label('account-dark'));
  await visit(page, `/account/privacy?lang=${lang}`, label('privacy-centre'));
  const download = await Promise.all([page.waitForEvent('download'), page.locator('a[href="/account/privacy/export"]').click()]);
  check(label('privacy centre: the data archive downloads'), (await download[0].suggestedFilename()).endsWith('.tar'));
  await page.locator('form[action="/account/privacy/object"]:has(input[value="develop"]) button').click();
  await page.waitForURL(/done=objection_stopped/);
  check(label('privacy centre: the objection is in effect'), (await page.locator('form[action="/account/privacy/object"] button[name="withdraw"]').count()) === 1);
  await inspect(page, label('privacy-centre-objected'));
  await page.locator('form[action="/account/privacy/request"] input[value="access"]').check();
  await page.fill('#f-request-message', `A copy, please (${lang} ${device})`);
  await page.locator('form[action="/account/privacy/request"] button').click();
  await page.waitForURL(/done=request_sent/);
  check(label('privacy centre: the request is listed'), (await page.locator('ul.requests li').count()) === 1);
  // The same person writes in by the public form, and confirms from the mail.
  await visit(page, `/privacy-request?lang=${lang}`, label('privacy-request'));
  await page.fill('#f-email', email);
  await page.locator('input[name="kind"][value="export"]').check();
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  await inspect(page, label('privacy-request-sent'));
  await page.goto(await mailedLink(email, '/privacy-request/confirm'));
  await inspect(page, label('privacy-request-confirm'));
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  check(label('privacy request: confirmed with its number'), /req_[0-9a-f]{24}/.test(await page.locator('main').innerText()));
  await inspect(page, label('privacy-request-confirmed'));
  // Messages: every choice on one page; news by e-mail only after the mailed link is confirmed.
  await visit(page, `/account/messages?lang=${lang}`, label('messages'));
  check(label('messages: push is offered where the browser can do it'), await page.locator('#push-on').isVisible());
  await page.locator('form[action="/account/messages"]:has(input[name="topic"][value="marketing"]):has(input[name="channel"][value="email"]) button').click();
  await page.waitForURL(/done=messages_confirm_sent/);
  await inspect(page, label('messages-confirm-sent'));
  await page.goto(await mailedLink(email, '/messages/confirm'));
  await inspect(page, label('messages-confirm'));
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  await inspect(page, label('messages-confirmed'));
  await page.goto(`${BASE}/account/messages?lang=${lang}`);
  check(label('messages: news by e-mail is on'), (await page.locator('form[action="/account/messages"]:has(input[name="topic"][value="marketing"]):has(input[name="channel"][value="email"]) input[name="choice"][value="off"]').count()) === 1);
  await page.locator('form[action="/account/messages"]:has(input[name="topic"][value="partner"]) button').click();
  await page.waitForURL(/done=messages_on/);
  await inspect(page, label('messages-partner-on'));
  await visit(page, `/billing?lang=${lang}`, label('billing'));
  await visit(page, `/no-such-page?lang=${lang}`, label('not-found'), 404);
  check(label('not-found: in the visitor language'), (await page.locator('html').getAttribute('lang')) === lang);

  // Last: erase the account, and read the receipt once the worker has run.
  await page.goto(`${BASE}/account/privacy?lang=${lang}`);
  await page.fill('#f-erase-password', PASSWORD);
  await page.locator('form[action="/account/privacy/erase"] button').click();
  await page.waitForURL(/\/erasure\/era_/);
  const receipt = page.url();
  check(label('erasure: signed out at once'), !(await cookieNames(context)).includes('__Host-session'));
  for (let i = 0; i < 50 && !(await page.locator('p.done').count()); i += 1) {
    await page.waitForTimeout(200);
    await page.goto(receipt);
  }
  check(label('erasure: the receipt is verified'), (await page.locator('p.done').count()) === 1, page.url());
  await inspect(page, label('erasure-receipt'));
}

/** Staff pages, signed in as the admin the script made. */
async function staff(browser, lang, device) {
  await onPage(browser, { ...DEVICES[device], locale: locale(lang) }, `${lang} ${device} staff`, (page) => staffSteps(page, lang, device));
}

async function staffSteps(page, lang, device) {
  const label = (name) => `${lang} ${device} ${name}`;
  await page.goto(`${BASE}/login?lang=${lang}`);
  await page.fill('#f-email', 'admin@passme.test');
  await page.fill('#f-password', ADMIN_PASSWORD);
  await page.locator('main form[action="/login"] button[type="submit"]').click();
  await page.waitForURL(/\/account/);
  check(label('staff: the header links to the staff console'), (await page.locator('header a[href^="/staff?"]').count()) === 1);
  await visit(page, `/staff?lang=${lang}`, label('staff-console'));
  check(label('staff console: an admin sees every part'), (await page.locator('ul.console li').count()) === 8);
  await visit(page, `/staff/analytics?lang=${lang}`, label('dashboard'));
  check(label('dashboard: the chart has axes'), (await page.locator('.chart svg .axis').count()) >= 2);
  await visit(page, `/staff/analytics?lang=${lang}&page=%2F`, label('dashboard-filtered'));
  await visit(page, `/staff/audit?lang=${lang}`, label('audit'));
  check(label('audit: entries are listed'), (await page.locator('main table tbody tr').count()) > 0);
  await visit(page, `/staff/privacy?lang=${lang}`, label('privacy-officer'));
  check(label('privacy officer: a retention report is listed'), /ret_[0-9a-f]{24}/.test(await page.locator('main').innerText()));
  await page.selectOption('#f-hold-category', 'fraud');
  await page.fill('#f-hold-reason', `Browser suite ${lang} ${device}`);
  await page.fill('#f-hold-until', '2099-12-31');
  await page.locator('form[action="/staff/privacy/holds"] button[type="submit"]').click();
  await page.waitForURL(/done=hold_placed/);
  check(label('privacy officer: the hold is placed and listed'), (await page.locator('main').innerText()).includes(`Browser suite ${lang} ${device}`));
  await inspect(page, label('privacy-officer-hold'));
  await page.locator('form[action="/staff/privacy/holds/lift"] button[type="submit"]').first().click();
  await page.waitForURL(/done=hold_lifted/);
  check(label('privacy officer: the hold is lifted'), !(await page.locator('main').innerText()).includes(`Browser suite ${lang} ${device}`));

  // Opening a person's data takes a reason, and shows only this role's parts.
  await visit(page, `/staff/people?lang=${lang}`, label('staff-people'));
  await page.fill('#f-person-email', 'admin@passme.test');
  await page.fill('#f-person-reason', `Browser suite ${lang} ${device}: checking the person view`);
  await page.locator('form[action="/staff/people"] button[type="submit"]').click();
  await page.waitForLoadState();
  check(label('staff people: the person is opened'), (await page.locator('#part-account').count()) === 1);
  await inspect(page, label('staff-people-opened'));
  await visit(page, `/account/privacy?lang=${lang}`, label('privacy-centre-staff-reads'));
  check(label('privacy centre: the opening is listed with its reason'), (await page.locator('ul.staff-reads').innerText()).includes(`Browser suite ${lang} ${device}`));

  // Fraud scanning: a rule that divides by zero is refused; one that sends this round's sign-ins
  // to review makes a decision the admin sees on their privacy page and appeals; the analyst
  // labels it; then the rule is switched off for the rounds after.
  await visit(page, `/staff/fraud?lang=${lang}`, label('staff-fraud'));
  const rule = `suite_${lang}_${device}`;
  const newRule = async (expression) => {
    await page.fill('#nr-id', rule);
    await page.fill('#nr-name', `Browser suite ${lang} ${device}`);
    await page.fill('#nr-expr', expression);
    await page.selectOption('#nr-outcome', 'review');
    await page.locator('form:has(#nr-id) button[type="submit"]').click();
    await page.waitForLoadState();
  };
  await newRule('event.kind == "signin" && 1 / 0 > 1');
  check(label('fraud: a rule dividing by zero is refused'), (await page.locator('main p.error[role="alert"]').count()) === 1);
  await inspect(page, label('staff-fraud-refused'));
  await newRule('event.kind == "signin" && network.isp == ""');
  check(label('fraud: the rule is saved'), (await page.locator('main').innerText()).includes(rule));
  await page.goto(`${BASE}/account?lang=${lang}`);
  await page.locator('form[action="/logout"] button').click();
  await page.goto(`${BASE}/login?lang=${lang}`);
  await page.fill('#f-email', 'admin@passme.test');
  await page.fill('#f-password', ADMIN_PASSWORD);
  await page.locator('main form[action="/login"] button[type="submit"]').click();
  await page.waitForURL(/\/account/);
  await visit(page, `/account/privacy?lang=${lang}`, label('privacy-centre-decisions'));
  const appeal = `Browser suite appeal ${lang} ${device}`;
  await page.locator('form[action="/account/privacy/appeal"] textarea').first().fill(appeal);
  await page.locator('form[action="/account/privacy/appeal"] button').first().click();
  await page.waitForURL(/#decisions/);
  await visit(page, `/staff/fraud?lang=${lang}`, label('staff-fraud-queue'));
  check(label('fraud: the appeal is in the queue'), (await page.locator('main').innerText()).includes(appeal));
  const decided = page.locator(`section.decision:has-text("${appeal}")`);
  await decided.locator('input[value="false_positive"]').check();
  await decided.locator('button[type="submit"]').click();
  await page.waitForURL(/\/staff\/fraud$/);
  check(label('fraud: the verdict empties the queue of it'), !(await page.locator('main').innerText()).includes(appeal));
  const edit = page.locator(`form[action="/staff/fraud/rules"]:has(input[name="id"][value="${rule}"])`);
  await page.locator(`li:has(input[name="id"][value="${rule}"]) summary`).click();
  await edit.locator('input[name="enabled"]').uncheck();
  await edit.locator('button[type="submit"]').click();
  await page.waitForURL(/\/staff\/fraud$/);

  // The register of authority requests: one registered and completed.
  await visit(page, `/staff/compliance?lang=${lang}`, label('staff-compliance'));
  const reference = `SUITE-${lang}-${device}`;
  await page.fill('#r-authority', 'Københavns Politi');
  await page.fill('#r-reference', reference);
  await page.fill('#r-basis', 'Retsplejeloven § 804');
  await page.fill('#r-asked', 'Sign-in times for one account');
  await page.locator('form[action="/staff/compliance/authority"] button[type="submit"]').click();
  await page.waitForURL(/\/staff\/compliance$/);
  const registered = page.locator(`section.decision:has-text("${reference}")`);
  await registered.locator('input[value="refused"]').check();
  await registered.locator('textarea[name="disclosed"]').fill('No court order was enclosed');
  await registered.locator('button[type="submit"]').click();
  await page.waitForURL(/\/staff\/compliance$/);
  check(label('compliance: the request is complete'), (await page.locator('main').innerText()).includes('No court order was enclosed'));
  await inspect(page, label('staff-compliance-done'));
  await visit(page, `/appeal?token=invalid&lang=${lang}`, label('appeal-invalid'), 400);

  // The support queue: this round's case, taken and answered with a canned reply.
  await visit(page, `/staff/support?lang=${lang}`, label('staff-support'));
  await page.locator(`ul.cases a:has-text("Browser suite case ${lang} ${device}")`).click();
  await page.waitForLoadState();
  await inspect(page, label('staff-support-case'));
  await page.selectOption('#f-canned', 'payment');
  await page.locator('form[action$="/reply"] button[type="submit"]').click();
  await page.waitForLoadState();
  check(label('support: the answer is on the case'), (await page.locator('ol.thread li').count()) === 2);
  await inspect(page, label('staff-support-answered'));

  // An announcement to everyone, its progress, and its one-click unsubscribe without signing in.
  await visit(page, `/staff/messages?lang=${lang}`, label('staff-messages'));
  const subject = `Maintenance ${lang} ${device}`;
  await page.locator('#k-maintenance').check();
  await page.fill('#m-subject-da', `${subject} (da)`);
  await page.fill('#m-body-da', 'Tjenesten er nede søndag kl. 2–4.');
  await page.fill('#m-subject-en', `${subject} (en)`);
  await page.fill('#m-body-en', 'The service is down on Sunday 2–4 am.');
  await page.locator('form[action="/staff/messages/announce"] button[type="submit"]').click();
  await page.waitForURL(/done=announced/);
  check(label('staff messages: the announcement is listed'), (await page.locator('main').innerText()).includes(subject));
  await inspect(page, label('staff-messages-announced'));
  const unsubscribe = await unsubscribeLink('admin@passme.test', subject);
  const other = await page.context().browser().newContext({ ...DEVICES[device], locale: locale(lang), bypassCSP: true });
  const anonymous = await other.newPage();
  await anonymous.goto(unsubscribe.replace(/^https?:\/\/[^/]+/, BASE));
  await inspect(anonymous, label('unsubscribe'));
  await anonymous.locator('main form button[type="submit"]').click();
  await anonymous.waitForLoadState();
  check(label('unsubscribe: done without signing in'), (await anonymous.locator('main form').count()) === 0);
  await inspect(anonymous, label('unsubscribed'));
  await other.close();
  // The admin's own page shows it off, and turns it on again for the next round.
  await page.goto(`${BASE}/account/messages?lang=${lang}`);
  const serviceMail = 'form[action="/account/messages"]:has(input[name="topic"][value="service"]):has(input[name="channel"][value="email"])';
  check(label('unsubscribe: the choice is off on the account page'), (await page.locator(`${serviceMail} input[name="choice"][value="on"]`).count()) === 1);
  await page.locator(`${serviceMail} button`).click();
  await page.waitForURL(/done=messages_on/);
}

/** Every public page with cookies refused: the jar is emptied before every request, so the
 * server never gets a cookie back, as from a browser that refuses them. */
async function cookiesRefused(browser, lang) {
  await onPage(browser, { ...DEVICES.phone, locale: locale(lang) }, `${lang} no-cookies`, (page, context) =>
    cookiesRefusedSteps(page, context, lang));
}

async function cookiesRefusedSteps(page, context, lang) {
  const label = (name) => `${lang} no-cookies ${name}`;
  for (const [name, url] of [['home', '/'], ['privacy', '/privacy'], ['cookies', '/cookies'], ['signup', '/signup'], ['privacy-request', '/privacy-request'], ['contact', '/contact'], ['login', '/login']]) {
    await context.clearCookies();
    await visit(page, `${url}?lang=${lang}`, label(name));
  }
  await page.fill('#f-email', 'nobody@example.com');
  await page.fill('#f-password', PASSWORD);
  await context.clearCookies();
  await page.locator('main form[action="/login"] button[type="submit"]').click();
  await page.waitForLoadState();
  check(label('login explains that it needs a cookie'), (await page.locator('main').innerText()).includes('__Host-session'));
  await inspect(page, label('login-refused'));
}

/** The admin's one-hour link from `passme admin create`: set the password. */
async function setAdminPassword(browser) {
  const context = await browser.newContext({ ...DEVICES.desktop, locale: 'en-GB' });
  const page = await context.newPage();
  await page.goto(ADMIN_LINK.replace(/^https?:\/\/[^/]+/, BASE));
  await page.fill('#f-password', ADMIN_PASSWORD);
  await page.locator('main form button[type="submit"]').click();
  await page.waitForLoadState();
  await context.close();
}

// Chromium as people run it: a headless one says so in its user agent, and the tracker leaves
// bots uncounted. Set on the command line, so the beacons sent while a page unloads carry it too.
const version = execFileSync('/usr/bin/chromium', ['--version']).toString().match(/\d+\.[\d.]+/)[0];
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    `--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${version} Safari/537.36`,'--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// What the identity provider says about each journey's person.
fs.writeFileSync(PROVIDER_ACCOUNTS, JSON.stringify(Object.fromEntries(
  ['da-desktop', 'da-phone', 'en-desktop', 'en-phone'].map((login) => [login, { name: `Person ${login}`, industry: 'Software', interests: ['ai', 'privacy'] }]),
)));
try {
  await setAdminPassword(browser);
  const each = [['da', 'desktop'], ['da', 'phone'], ['en', 'desktop'], ['en', 'phone']];
  for (const [lang, device] of each) await journey(browser, lang, device);
  for (const lang of ['da', 'en']) await cookiesRefused(browser, lang);
  // Last, so that the dashboard has the journeys' page views to show.
  for (const [lang, device] of each) await staff(browser, lang, device);
} catch (e) {
  failures.push(`the suite stopped: ${e.stack ?? e}`);
  console.log(`FAIL the suite stopped: ${e.stack ?? e}`);
} finally {
  await browser.close();
}
const shots = fs.readdirSync(SHOTS).length;
console.log(`browser suite: ${passed} checks passed, ${failures.length} failed; ${shots} screenshots in ${SHOTS}`);
console.log(`test result: ${failures.length ? 'FAILED' : 'ok'}. ${passed} passed; ${failures.length} failed; 0 ignored`);
process.exit(failures.length ? 1 : 0);
