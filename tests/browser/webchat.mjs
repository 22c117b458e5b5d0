// Browser test of the web chat page served by `pincer gateway` at GET /.
//
//   node tests/browser/webchat.mjs target/debug/pincer [target/debug/openai-fake]
//
// Starts the gateway in a temp PINCER_HOME with a slow-streaming echo provider, drives the
// page in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM), and checks, in
// order: the page's CSP and gzip; a streamed reply; markdown and a highlighted code block
// with its copy button; a table of XSS payloads echoed back renders as inert text (no
// dialog, no request off the gateway, no on* attribute, no javascript: link); Esc stops a
// reply mid-stream, which keeps its partial text, no delta comes after, and the next
// message is answered; Esc with a message waiting behind a reply stops the waiting one,
// which never runs, while the reply finishes; an agent whose model cannot answer shows "not ready" and its error
// renders as an error; past chats (renamed, new) survive a reload and a gateway restart;
// deleting asks first in an in-page dialog; a kill of `pincer/agents` shows in the tree;
// a phone viewport has the drawers closed and the input in view. Given the OpenAI fake's
// program, it also talks to a second agent, `tools`, on the fake: a tool call shows as a
// collapsible step, and an `exec` call asks first, with buttons that answer it. Leaves
// screenshots in target/browser/ (webchat.png at the end or at the failure, and one per
// feature: -markdown, -xss, -stop, -stop-waiting, -error, -chats, -delete, -approval, -phone). Exit 0 on
// success, 1 with a reason otherwise.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const OVERALL_TIMEOUT_MS = 150_000;
const READY_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 15_000;
const KILL_PATH = 'pincer/agents';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.resolve(HERE, '..', '..', 'target', 'browser');
fs.mkdirSync(SHOTS, { recursive: true });
const shot = (name) => path.join(SHOTS, `${name}.png`);
const SCREENSHOT = shot('webchat');
const SCREENSHOT_APPROVAL = shot('webchat-approval');
// The CSP the page must come with (src/http/webchat.rs).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const bin = process.argv[2];
const fakeBin = process.argv[3] ? path.resolve(process.argv[3]) : null;
let fake = null;
if (!bin) {
  console.error('usage: node tests/browser/webchat.mjs <path to pincer binary>');
  process.exit(2);
}
const binPath = path.resolve(bin);

let gateway = null;
let gatewayExit = null;
let gatewayLog = '';
let browser = null;
let page = null;
const pageLog = [];
const t0 = Date.now();

function step(msg) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
}

class TestFailure extends Error {}
function fail(msg) {
  throw new TestFailure(msg);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` until it returns a truthy value; fails with `what` after `timeoutMs`.
async function until(what, fn, timeoutMs = STEP_TIMEOUT_MS, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    if (gatewayExit) fail(`gateway exited (${gatewayExit}) while waiting for ${what}`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e instanceof TestFailure) throw e;
      last = e;
    }
    if (Date.now() > deadline) {
      fail(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(everyMs);
  }
}

function startGateway(home, port) {
  step(`starting ${binPath} gateway --port ${port} (PINCER_HOME=${home})`);
  gateway = spawn(binPath, ['gateway', '--port', String(port)], {
    env: { ...process.env, PINCER_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d) => {
    gatewayLog += d.toString();
    if (gatewayLog.length > 200_000) gatewayLog = gatewayLog.slice(-100_000);
  };
  gateway.stdout.on('data', keep);
  gateway.stderr.on('data', keep);
  gateway.on('error', (e) => { gatewayExit = `spawn error: ${e.message}`; });
  gateway.on('exit', (code, sig) => { gatewayExit = sig ? `signal ${sig}` : `code ${code}`; });
}

// Starts the OpenAI fake with `scripts` queued; resolves to its base URL.
async function startFake(scripts) {
  fake = spawn(fakeBin, scripts, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  fake.stderr.on('data', (d) => { gatewayLog += `[fake] ${d}`; });
  return until('the OpenAI fake to listen', () => new Promise((resolve) => {
    const seen = () => { const m = out.match(/listening (\S+)/); return m ? m[1] : null; };
    if (seen()) return resolve(seen());
    fake.stdout.once('data', (d) => { out += d.toString(); resolve(seen()); });
    setTimeout(() => resolve(null), 200);
  }), 10_000, 10);
}

async function stopGateway() {
  if (!gateway || gatewayExit) return;
  const exited = new Promise((r) => gateway.once('exit', r));
  gateway.kill('SIGTERM');
  const t = setTimeout(() => { if (!gatewayExit) gateway.kill('SIGKILL'); }, 5000);
  await Promise.race([exited, sleep(7000)]);
  clearTimeout(t);
}

// Sends `text` through the page and waits for its assistant bubble to end "done".
// Returns {id, final, samples}: samples are every (state, text) the bubble showed.
async function chat(text) {
  const before = await page.$$eval('#messages [data-role="user"]', (els) => els.map((e) => e.dataset.id));
  await page.evaluate(() => {
    // Record every state the assistant bubbles go through, so a fast stream is not missed.
    window.__samples = [];
    const ol = document.querySelector('#messages');
    const snap = () => {
      for (const li of ol.querySelectorAll('[data-role="assistant"]')) {
        window.__samples.push({
          id: li.dataset.id,
          state: li.dataset.state,
          text: li.querySelector('.text')?.textContent ?? li.textContent,
        });
      }
    };
    window.__observer?.disconnect();
    window.__observer = new MutationObserver(snap);
    window.__observer.observe(ol, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
  const id = await until(`the user bubble for "${text}"`, () =>
    page.$$eval('#messages [data-role="user"]', (els, prev) => {
      const e = els.find((x) => !prev.includes(x.dataset.id));
      return e ? e.dataset.id : null;
    }, before));
  if ((await page.inputValue('#input')) !== '') fail('Enter did not clear the input');
  const sel = `#messages [data-role="assistant"][data-id="${id}"]`;
  // A second sampler from outside the page, as a check on the observer.
  const polled = [];
  const final = await until(`the reply to "${text}" to be done`, async () => {
    const r = await page.$eval(sel, (e) => ({ state: e.dataset.state, text: e.querySelector('.text')?.textContent ?? e.textContent }))
      .catch(() => null);
    if (r) polled.push(r);
    if (r?.state === 'error') fail(`reply to "${text}" ended in error: ${await page.$eval(sel, (e) => e.textContent)}`);
    return r?.state === 'done' ? r.text : null;
  }, STEP_TIMEOUT_MS, 15);
  const samples = (await page.evaluate(() => window.__samples)).filter((s) => s.id === id).concat(polled);
  return { id, final, samples };
}

async function main() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pincer-webchat-'));
  let config = '[providers.echo]\nchunkSize = 4\nchunkDelayMs = 30\n\n' +
    '[agents.main]\nmodel = "echo/echo"\ndefault = true\n\n' +
    // No [providers.anthropic]: this agent's model cannot answer.
    '[agents.broken]\nmodel = "anthropic/claude-sonnet-4-5"\n';
  if (fakeBin) {
    // The `tools` agent's model: a call of echo, an answer; a call of exec, an answer.
    const url = await startFake([
      'tool:echo:{"text":"ping"}', 'text:Echo said ping.',
      'tool:exec:{"command":"date +%Y"}', 'text:Ran it.',
    ]);
    step(`OpenAI fake at ${url}`);
    config += `\n[providers.openai]\nbaseUrl = "${url}"\napiKey = "sk-test"\n\n[response]\ntransport = "sse"\n\n` +
      '[agents.tools]\nmodel = "openai/gpt-4.1"\nskills = ["echo", "exec"]\n';
  }
  fs.writeFileSync(path.join(home, 'pincer.toml'), config);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  startGateway(home, port);
  // Not /readyz: the `broken` agent keeps the gateway not ready, on purpose.
  await until('GET /healthz to answer 200', async () => (await fetch(`${base}/healthz`)).status === 200,
    READY_TIMEOUT_MS, 100);
  step('gateway alive');
  await checkAssets(base);

  browser = await chromium.launch({
    // Our own handlers stop the gateway too; see the end of this file.
    handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  page = await watchPage(await context.newPage(), base);
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });

  await until('the agent picker to hold "main"', () =>
    page.$eval('#agent', (s) => Array.from(s.options).some((o) => o.value === 'main')));
  await page.selectOption('#agent', 'main');
  step('agent picker holds main');

  // 1. A streamed reply: the bubble grows while streaming and ends done with the full text.
  const first = await chat('hello browser');
  if (!first.final.includes('hello browser')) fail(`reply "${first.final}" does not contain "hello browser"`);
  const partial = first.samples.filter((s) => s.state === 'streaming' && s.text.length > 0 && s.text.length < first.final.length);
  if (partial.length === 0) {
    fail(`the reply never showed a partial text while streaming; samples: ${JSON.stringify(first.samples.slice(0, 20))}`);
  }
  const grew = new Set(partial.map((s) => s.text.length)).size;
  step(`streamed reply ok: ${partial.length} partial samples (${grew} distinct lengths), final "${first.final}"`);
  await agentBadge('main', 'true');

  await markdown();
  await xss();
  await stop();
  await stopWaiting();
  await errors();
  await pastChats(home, port, base);
  await deleteAsks();

  // Kill a subtree through the admin API; the tree panel must show the restart.
  await until(`the tree panel row ${KILL_PATH}`, () =>
    page.$(`#tree [data-path="${KILL_PATH}"]`));
  const restartsBefore = Number(await page.getAttribute(`#tree [data-path="${KILL_PATH}"]`, 'data-restarts'));
  const tokenFile = path.join(home, 'gateway.token');
  const token = (await until(`${tokenFile} to exist`, () => fs.existsSync(tokenFile) && fs.readFileSync(tokenFile, 'utf8').trim())).trim();
  const kill = await fetch(`${base}/admin/actors/kill`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ path: KILL_PATH }),
  });
  const killBody = await kill.text();
  if (kill.status !== 200) fail(`POST /admin/actors/kill {"path":"${KILL_PATH}"} answered ${kill.status}: ${killBody}`);
  step(`killed ${KILL_PATH}: ${killBody.trim()}`);
  const row = await until(`row ${KILL_PATH} to show a restart and state running`, () =>
    page.$eval(`#tree [data-path="${KILL_PATH}"]`, (e, min) =>
      Number(e.dataset.restarts) >= min && e.dataset.state === 'running' ? { ...e.dataset } : null,
    Math.max(1, restartsBefore + 1)).catch(() => null));
  step(`tree shows ${KILL_PATH} running with restarts=${row.restarts}`);

  // The gateway keeps answering after the kill.
  const second = await chat('still there after the kill');
  if (!second.final.includes('still there after the kill')) {
    fail(`reply after the kill "${second.final}" does not contain the input`);
  }
  step(`reply after kill ok: "${second.final}"`);

  if (fakeBin) await tools();

  // What a person sees at the end: look at it after a change to the page.
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  step(`screenshot: ${SCREENSHOT}`);
  await phone(base);

  if (dialogs.length) fail(`the page opened dialogs: ${JSON.stringify(dialogs)}`);
  if (foreign.length) fail(`the page asked for URLs off the gateway: ${JSON.stringify(foreign.slice(0, 5))}`);
  if (pageErrors.length) fail(`page errors: ${pageErrors.join('; ')}`);
  fs.rmSync(home, { recursive: true, force: true });
}

// Every page of the run is watched: a dialog (alert, confirm, prompt) or a request to any
// URL but the gateway's fails the test at the end; page errors too.
const dialogs = [];
const foreign = [];
const pageErrors = [];
const frames = [];
let context = null;
async function watchPage(p, base) {
  p.on('pageerror', (e) => pageErrors.push(e.message));
  p.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  p.on('dialog', (d) => { dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  p.on('request', (r) => {
    const url = r.url();
    const own = url.startsWith(`${base}/`) || url.startsWith(`ws://127.0.0.1:${new URL(base).port}/`) ||
      url.startsWith('data:');
    if (!own) foreign.push(url);
  });
  p.on('websocket', (ws) => {
    pageLog.push(`websocket open ${ws.url()}`);
    ws.on('framereceived', (f) => {
      if (typeof f.payload === 'string' && f.payload.length < 100_000) frames.push({ at: Date.now(), text: f.payload });
    });
    ws.on('close', () => pageLog.push(`websocket closed ${ws.url()}`));
  });
  return p;
}

// The page and its files: CSP on each, gzip when asked, files cached for good.
async function checkAssets(base) {
  const index = await fetch(`${base}/`, { headers: { 'accept-encoding': 'gzip' } });
  const html = await index.text();
  const ctype = index.headers.get('content-type') || '';
  if (index.status !== 200 || !ctype.includes('text/html')) {
    fail(`GET / answered ${index.status} with content-type "${ctype}", expected 200 text/html`);
  }
  if (index.headers.get('content-security-policy') !== CSP) {
    fail(`GET / has CSP "${index.headers.get('content-security-policy')}", expected "${CSP}"`);
  }
  if (index.headers.get('content-encoding') !== 'gzip') fail('GET / with accept-encoding: gzip was not gzipped');
  const files = [...html.matchAll(/(?:src|href)="(\/webchat\/[^"]+)"/g)].map((m) => m[1]);
  if (files.length !== 4) fail(`the page links ${files.length} files, expected 4: ${files}`);
  for (const f of files) {
    const r = await fetch(`${base}${f}`, { headers: { 'accept-encoding': 'gzip' } });
    await r.arrayBuffer();
    if (r.status !== 200 || !(r.headers.get('cache-control') || '').includes('immutable') ||
        r.headers.get('content-encoding') !== 'gzip') {
      fail(`GET ${f}: ${r.status}, cache-control "${r.headers.get('cache-control')}", encoding "${r.headers.get('content-encoding')}"`);
    }
  }
  step(`page and ${files.length} files: CSP, gzip, immutable files`);
}

// The agent badge in the header says whether `agent` can answer.
async function agentBadge(agent, ready) {
  const got = await until(`the badge of ${agent} to say data-ready=${ready}`, () =>
    page.$eval('#agent-state', (e, want) => (e.dataset.ready === want ? e.textContent : null), ready));
  step(`badge of ${agent}: "${got}"`);
}

// Markdown: headings, emphasis, lists, a table, a link, a fenced code block highlighted,
// and its copy button copying the code.
async function markdown() {
  const text = [
    '', '# Title here', '', 'Some **bold**, *italic*, `code` and a [link](https://example.org/docs).', '',
    '- one', '- two', '  - nested', '', '1. first', '2. second', '',
    '| name | value |', '|------|------:|', '| a | 1 |', '| b | 2 |', '',
    '```rust', 'fn main() {', '    let answer = 42; // the answer', '    println!("{answer}");', '}', '```',
  ].join('\n');
  const r = await chat(text);
  const sel = `#messages [data-role="assistant"][data-id="${r.id}"] .text`;
  const found = await page.$eval(sel, (t) => ({
    h1: t.querySelector('h1')?.textContent,
    strong: t.querySelector('strong')?.textContent,
    em: t.querySelector('em')?.textContent,
    code: t.querySelector('p code')?.textContent,
    link: t.querySelector('a') && { href: t.querySelector('a').href, rel: t.querySelector('a').rel, target: t.querySelector('a').target },
    ul: t.querySelectorAll('ul > li').length,
    nested: t.querySelectorAll('ul li ul li').length,
    ol: t.querySelectorAll('ol > li').length,
    cells: Array.from(t.querySelectorAll('table td')).map((c) => c.textContent),
    right: t.querySelector('table td[data-align="right"]') !== null,
    lang: t.querySelector('.code .lang')?.textContent,
    kw: Array.from(t.querySelectorAll('.code .tok-kw')).map((k) => k.textContent),
    num: t.querySelector('.code .tok-num')?.textContent,
    com: t.querySelector('.code .tok-com')?.textContent,
    codeText: t.querySelector('.code pre code')?.textContent,
  }));
  const want = (ok, what) => { if (!ok) fail(`markdown: ${what}; rendered ${JSON.stringify(found)}`); };
  want(found.h1 === 'Title here', 'no h1 "Title here"');
  want(found.strong === 'bold' && found.em === 'italic' && found.code === 'code', 'emphasis or inline code missing');
  want(found.link && found.link.href === 'https://example.org/docs' && found.link.rel === 'noopener noreferrer' &&
    found.link.target === '_blank', 'the link is not https://example.org/docs with rel="noopener noreferrer" target=_blank');
  want(found.ul === 3 && found.nested === 1 && found.ol === 2, 'lists are not 2+1 nested bullets and 2 numbers');
  want(JSON.stringify(found.cells) === '["a","1","b","2"]' && found.right, 'the table is not a 2x2 body, right-aligned');
  want(found.lang === 'rust' && found.kw.includes('fn') && found.kw.includes('let') && found.num === '42' &&
    found.com === '// the answer', 'the rust block is not highlighted (fn, let, 42, comment)');
  await page.click(`#messages [data-id="${r.id}"] .code button.copy`);
  await until('the copy button to say Copied', () =>
    page.$eval(`#messages [data-id="${r.id}"] .code button.copy`, (b) => b.textContent === 'Copied'));
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  if (copied !== found.codeText) fail(`the clipboard holds ${JSON.stringify(copied)}, not the code`);
  await page.locator(`#messages [data-role="assistant"][data-id="${r.id}"]`).screenshot({ path: shot('webchat-markdown') });
  step('markdown rendered: heading, emphasis, lists, table, link, highlighted rust, copy button');
}

// Payloads a model (or a person) might send: each must show as text and do nothing.
const XSS = [
  '<script>alert(1)</script>',
  '<img src=x onerror=alert(2)>',
  '<svg onload=alert(3)><circle r=5 /></svg>',
  '<iframe src="javascript:alert(4)"></iframe>',
  '[click me](javascript:alert(5))',
  '[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCg2KTwvc2NyaXB0Pg==)',
  '![img](https://evil.example/pixel.png)',
  '<a href="javascript:alert(7)">a</a>',
  '<style>body{display:none}</style><div style="background:url(https://evil.example/x)">css</div>',
  '<link rel=stylesheet href=https://evil.example/x.css>',
  '[jav&#x61;script](jav&#x61;script:alert(8))',
  '<details open ontoggle=alert(9)>',
  '`<b onmouseover=alert(10)>`',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(11)>',
  '[x](JaVaScRiPt:alert(12))',
  '<https://evil.example/auto>',
];
async function xss() {
  const text = '\n' + XSS.map((p, i) => `${i + 1}. ${p}`).join('\n');
  const r = await chat(text);
  await sleep(300); // anything that would fire, fires
  const found = await page.evaluate((id) => {
    const bad = [];
    for (const e of document.querySelectorAll('*')) {
      for (const a of e.attributes) if (/^on/i.test(a.name)) bad.push(`${e.tagName} ${a.name}`);
      if (e.tagName === 'A') {
        const p = new URL(e.href, location.href).protocol;
        if (!['http:', 'https:', 'mailto:'].includes(p)) bad.push(`a href ${e.getAttribute('href')}`);
      }
    }
    const msgs = document.querySelector('#messages');
    for (const tag of ['script', 'img', 'svg', 'iframe', 'style', 'link', 'math', 'object', 'embed', 'video', 'audio']) {
      if (msgs.querySelector(tag)) bad.push(`<${tag}> in #messages`);
    }
    if (msgs.querySelector('[style]')) bad.push('a style attribute in #messages');
    if (msgs.querySelector('a a')) bad.push('a link inside a link');
    const scripts = Array.from(document.scripts).map((s) => s.getAttribute('src'));
    if (scripts.some((s) => !s || !s.startsWith('/webchat/'))) bad.push(`scripts: ${scripts}`);
    const reply = document.querySelector(`#messages [data-role="assistant"][data-id="${id}"] .text`).textContent;
    return { bad, reply };
  }, r.id);
  if (found.bad.length) fail(`XSS payloads became markup: ${found.bad.join('; ')}`);
  for (const p of ['<script>alert(1)</script>', '<img src=x onerror=alert(2)>', '<svg onload=alert(3)>']) {
    if (!found.reply.includes(p)) fail(`the payload ${p} is not shown as text in the reply`);
  }
  const links = await page.$$eval(`#messages [data-id="${r.id}"] a`, (as) => as.map((a) => a.href));
  // Only http(s) links stay links: the image's, the URL in the CSS, the autolink.
  const want = ['https://evil.example/pixel.png', 'https://evil.example/x', 'https://evil.example/auto'];
  if (JSON.stringify(links) !== JSON.stringify(want)) fail(`the payloads' links are ${JSON.stringify(links)}, expected ${JSON.stringify(want)}`);
  await page.locator(`#messages [data-role="assistant"][data-id="${r.id}"]`).screenshot({ path: shot('webchat-xss') });
  if (dialogs.length) fail(`a payload opened a dialog: ${dialogs.join('; ')}`);
  if (foreign.length) fail(`a payload made a request off the gateway: ${foreign.join('; ')}`);
  step(`${XSS.length} XSS payloads inert (links kept: ${JSON.stringify(links)}); no dialog, no request`);
}

// Esc stops a reply mid-stream: its partial text stays, marked stopped, no delta comes
// after, and the next message is answered at once.
async function stop() {
  const long = 'stop me ' + 'and keep going '.repeat(40);
  const before = await page.$$eval('#messages [data-role="user"]', (els) => els.map((e) => e.dataset.id));
  await page.fill('#input', long);
  await page.press('#input', 'Enter');
  const id = await until('the long message to be sent', () =>
    page.$$eval('#messages [data-role="user"]', (els, prev) => els.find((x) => !prev.includes(x.dataset.id))?.dataset.id, before));
  const sel = `#messages [data-role="assistant"][data-id="${id}"]`;
  await until('the long reply to stream some text', () =>
    page.$eval(`${sel} .text`, (t) => t.textContent.length > 24).catch(() => false), STEP_TIMEOUT_MS, 20);
  if (await page.isHidden('#stop')) fail('no Stop button while a reply streams');
  await page.keyboard.press('Escape');
  await until('the reply to be marked stopped', () => page.$eval(sel, (e) => e.dataset.state === 'stopped'));
  const stoppedAt = Date.now();
  const kept = await page.$eval(`${sel} .text`, (t) => t.textContent);
  const full = `echo: ${long}`;
  if (!(kept.length > 0 && kept.length < full.length && full.startsWith(kept.replace(/\s+$/, '')))) {
    fail(`the stopped reply kept "${kept}", not a start of the full reply`);
  }
  await page.screenshot({ path: shot('webchat-stop') });
  await sleep(1200);
  const after = await page.$eval(`${sel} .text`, (t) => t.textContent);
  if (after !== kept) fail(`the stopped reply changed after the stop: "${after}"`);
  const late = frames.filter((f) => f.at > stoppedAt && f.text.includes(`"id":"${id}"`) && f.text.includes('"type":"delta"'));
  if (late.length) fail(`${late.length} deltas of the stopped reply came after it stopped`);
  const done = frames.find((f) => f.text.includes(`"id":"${id}"`) && f.text.includes('"type":"done"'));
  if (!done || !JSON.parse(done.text).stopped) fail(`no done frame with stopped: true for the stopped reply (${done?.text})`);
  if (!(await page.isHidden('#stop'))) fail('the Stop button stays after the stop');
  const t0 = Date.now();
  const next = await chat('after the stop');
  if (!next.final.includes('after the stop')) fail(`the message after the stop got "${next.final}"`);
  const afterStop = Date.now() - t0;
  // Keys: Up in an empty input brings the last message back; Shift+Enter is a new line.
  await page.press('#input', 'ArrowUp');
  if ((await page.inputValue('#input')) !== 'after the stop') fail(`Up gave "${await page.inputValue('#input')}"`);
  const bubbles = await page.$$eval('#messages [data-role="user"]', (els) => els.length);
  await page.fill('#input', 'line one');
  await page.press('#input', 'Shift+Enter');
  await page.keyboard.type('line two');
  if ((await page.inputValue('#input')) !== 'line one\nline two') fail(`Shift+Enter gave "${await page.inputValue('#input')}"`);
  if ((await page.$$eval('#messages [data-role="user"]', (els) => els.length)) !== bubbles) fail('Shift+Enter sent the message');
  await page.fill('#input', '');
  step(`stopped mid-stream with ${kept.length} of ${full.length} characters kept, no late delta; next reply in ${afterStop} ms`);
}

// Esc while a second message waits behind a streaming reply stops the waiting one (the
// last sent): it never reaches the model and shows as stopped, and the reply in flight
// finishes whole.
async function stopWaiting() {
  const long = 'finish me ' + 'and keep going '.repeat(40);
  const sent = [];
  for (const text of [long, 'never run']) {
    const before = await page.$$eval('#messages [data-role="user"]', (els) => els.map((e) => e.dataset.id));
    await page.fill('#input', text);
    await page.press('#input', 'Enter');
    sent.push(await until(`"${text.slice(0, 12)}" to be sent`, () =>
      page.$$eval('#messages [data-role="user"]', (els, prev) => els.find((x) => !prev.includes(x.dataset.id))?.dataset.id, before)));
  }
  const [first, waiting] = sent.map((id) => `#messages [data-role="assistant"][data-id="${id}"]`);
  await page.keyboard.press('Escape');
  await until('the waiting message to be marked stopped', () =>
    page.$eval(waiting, (e) => e.dataset.state === 'stopped').catch(() => false));
  const firstState = await page.$eval(first, (e) => ({ state: e.dataset.state, text: e.querySelector('.text').textContent }));
  const squeeze = (t) => t.replace(/\s+/g, ' ').trim();
  if (firstState.state !== 'done' || squeeze(firstState.text) !== squeeze(`echo: ${long}`)) {
    fail(`the reply in flight did not finish whole: ${JSON.stringify(firstState).slice(0, 200)}`);
  }
  const text = await page.$eval(`${waiting} .text`, (t) => t.textContent);
  if (text !== '') fail(`the stopped waiting message got "${text}"`);
  const ran = frames.filter((f) => f.text.includes(`"id":"${sent[1]}"`) && f.text.includes('"type":"delta"'));
  if (ran.length) fail(`the stopped waiting message streamed ${ran.length} deltas`);
  await page.locator(first).scrollIntoViewIfNeeded();
  await page.screenshot({ path: shot('webchat-stop-waiting') });
  step('Esc with a message waiting: the waiting one stopped unanswered, the reply in flight finished');
}

// An agent whose model cannot answer: its badge says not ready, and its reply is an error.
async function errors() {
  await page.selectOption('#agent', 'broken');
  await agentBadge('broken', 'false');
  const before = await page.$$eval('#messages [data-role="user"]', (els) => els.map((e) => e.dataset.id));
  await page.fill('#input', 'can you answer?');
  await page.press('#input', 'Enter');
  const id = await until('the message to broken to be sent', () =>
    page.$$eval('#messages [data-role="user"]', (els, prev) => els.find((x) => !prev.includes(x.dataset.id))?.dataset.id, before));
  const sel = `#messages [data-role="assistant"][data-id="${id}"]`;
  const shown = await until('the reply of broken to render as an error', () =>
    page.$eval(sel, (e) => (e.dataset.state === 'error' ? e.querySelector('.err').textContent : null)).catch(() => null));
  if (!/^Error/.test(shown) || !/anthropic/i.test(shown)) fail(`the error reads "${shown}", expected its reason (anthropic)`);
  const color = await page.$eval(sel, (e) => getComputedStyle(e).borderTopStyle);
  if (color !== 'solid') fail('the error bubble is not styled as an error');
  await page.screenshot({ path: shot('webchat-error') });
  step(`error rendered as an error: "${shown.slice(0, 100)}"`);
  await page.selectOption('#agent', 'main');
  await agentBadge('main', 'true');
}

const chatTitles = () => page.$$eval('#chat-list .chat .title', (els) => els.map((e) => e.textContent));

// Past chats: a new chat keeps the old one, a rename is kept, and both survive a reload
// and a gateway restart; an old chat opens with its messages.
async function pastChats(home, port, base) {
  await until('the first chat in the list', async () => (await chatTitles()).some((t) => t.startsWith('hello browser')));
  await page.click('#new');
  await chat('a second chat');
  await until('both chats listed', async () => {
    const t = await chatTitles();
    return t.some((x) => x.startsWith('hello browser')) && t.includes('a second chat');
  });
  const first = page.locator('#chat-list .chat', { hasText: 'hello browser' });
  await first.locator('button.rename').click();
  await page.fill('#chat-list .chat input', 'Renamed first chat <b>x</b>');
  await page.press('#chat-list .chat input', 'Enter');
  await until('the rename to show', async () => (await chatTitles()).includes('Renamed first chat <b>x</b>'));
  await page.screenshot({ path: shot('webchat-chats') });

  await page.reload({ waitUntil: 'domcontentloaded' });
  await until('the chats after a reload', async () => {
    const t = await chatTitles();
    return t.includes('Renamed first chat <b>x</b>') && t.includes('a second chat');
  });
  await until('the current chat reopened from the store', () =>
    page.$$eval('#messages [data-role="assistant"]', (els) => els.some((e) => e.textContent.includes('echo: a second chat'))));
  step('chats and the open chat survive a reload');

  await stopGateway();
  gatewayExit = null;
  startGateway(home, port);
  await until('GET /healthz after the restart', async () => (await fetch(`${base}/healthz`)).status === 200, READY_TIMEOUT_MS, 100);
  await until('the page to reconnect', () => page.$eval('#conn', (e) => e.dataset.state === 'online'), READY_TIMEOUT_MS);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await until('the chats after a gateway restart', async () => {
    const t = await chatTitles();
    return t.includes('Renamed first chat <b>x</b>') && t.includes('a second chat');
  }, READY_TIMEOUT_MS);
  await page.locator('#chat-list .chat', { hasText: 'Renamed first chat' }).click();
  const opened = await until('the old chat to open with its messages', () =>
    page.$$eval('#messages [data-role="assistant"]', (els) => {
      const texts = els.map((e) => ({ state: e.dataset.state, text: e.textContent }));
      return texts.some((t) => t.text.includes('echo: hello browser')) ? texts : null;
    }));
  const stopped = opened.find((t) => t.state === 'stopped');
  if (!stopped) fail(`the stopped reply is not marked stopped after the restart: ${JSON.stringify(opened.map((t) => t.state))}`);
  const h1 = await page.$('#messages .md h1');
  if (!h1) fail('the reopened chat does not render its markdown');
  step(`chats survive a gateway restart; the old chat opens with ${opened.length} replies (its stopped one marked)`);
  await page.click('#new');
}

// Deleting asks first, in an in-page dialog; Cancel keeps the chat, Delete removes it for good.
async function deleteAsks() {
  const target = () => page.locator('#chat-list .chat', { hasText: 'a second chat' });
  await target().locator('button.delete').click();
  await until('the delete dialog to open', () => page.$eval('#confirm', (d) => d.open));
  const question = await page.$eval('#confirm', (d) => d.textContent);
  if (!question.includes('a second chat')) fail(`the dialog asks "${question}"`);
  await page.screenshot({ path: shot('webchat-delete') });
  await page.click('#confirm-cancel');
  await sleep(300);
  if (!(await chatTitles()).includes('a second chat')) fail('Cancel deleted the chat');
  await target().locator('button.delete').click();
  await until('the delete dialog to open again', () => page.$eval('#confirm', (d) => d.open));
  await page.click('#confirm-ok');
  await until('the chat to go', async () => !(await chatTitles()).includes('a second chat'));
  await page.reload({ waitUntil: 'domcontentloaded' });
  await until('the list after a reload', async () => (await chatTitles()).some((t) => t.startsWith('Renamed first chat')));
  if ((await chatTitles()).includes('a second chat')) fail('the deleted chat came back after a reload');
  if (dialogs.length) fail(`deleting used a browser dialog: ${dialogs.join('; ')}`);
  step('delete asked in the page first; Cancel kept the chat, Delete removed it for good');
}

// A phone: the drawers are closed, the input and Send are in view, the tree opens as a drawer.
async function phone(base) {
  const p = await watchPage(await context.newPage(), base);
  await p.setViewportSize({ width: 390, height: 844 });
  await p.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  await until('the phone page to connect', () => p.$eval('#conn', (e) => e.dataset.state === 'online'));
  await until('the phone page to show the chat', () => p.$$eval('#messages .msg', (els) => els.length > 0));
  await sleep(300);
  const box = async (sel) => p.$eval(sel, (e) => {
    const r = e.getBoundingClientRect();
    const s = getComputedStyle(e);
    return { x: r.x, y: r.y, w: r.width, h: r.height, bottom: r.bottom, right: r.right, visible: s.visibility !== 'hidden' && s.display !== 'none' };
  });
  const side = await box('#side');
  const nav = await box('#chats');
  const input = await box('#input');
  const send = await box('#send');
  await p.screenshot({ path: shot('webchat-phone') });
  if (side.visible && side.x < 390) fail(`the tree is open on a phone: ${JSON.stringify(side)}`);
  if (nav.visible && nav.right > 0) fail(`the chats drawer is open on a phone: ${JSON.stringify(nav)}`);
  for (const [name, b] of [['input', input], ['send', send]]) {
    if (!(b.visible && b.y >= 0 && b.bottom <= 844 && b.x >= 0 && b.right <= 390 && b.h > 20)) {
      fail(`the ${name} is not fully in view on a phone: ${JSON.stringify(b)}`);
    }
  }
  await p.click('#side-toggle');
  await until('the tree drawer to open', async () => (await box('#side')).x < 390 && (await box('#side')).visible);
  await sleep(250);
  await p.screenshot({ path: shot('webchat-phone-tree') });
  await p.keyboard.press('Escape');
  await until('Esc to close the drawer', async () => !(await box('#side')).visible);
  await p.close();
  step('phone: drawers closed, input and Send in view; the tree opens as a drawer and Esc closes it');
}

// 4. The `tools` agent: a tool call as a step line, and an exec call that asks first.
async function tools() {
  await page.selectOption('#agent', 'tools');
  const echoed = await chat('use the echo tool');
  if (echoed.final !== 'Echo said ping.') fail(`tools agent replied "${echoed.final}"`);
  const sel = `#messages [data-role="assistant"][data-id="${echoed.id}"] .step summary`;
  const line = await page.$eval(sel, (e) => e.textContent).catch(() => null);
  if (!line || !/^echo — \d+ ms$/.test(line)) fail(`the tool step shows "${line}", expected "echo — N ms"`);
  step(`tool step shown: "${line}"`);

  // The exec call needs an answer: the question appears with buttons; "Run once" answers.
  const before = await page.$$eval('#messages [data-role="notice"]', (els) => els.length);
  await page.fill('#input', 'what year is it?');
  await page.press('#input', 'Enter');
  const notice = await until('the approval question', () =>
    page.$$eval('#messages [data-role="notice"]', (els, n) => (els.length > n ? els[els.length - 1].textContent : null), before));
  if (!notice.includes('exec wants to run') || !notice.includes('date +%Y')) fail(`the question reads "${notice}"`);
  await page.screenshot({ path: SCREENSHOT_APPROVAL, fullPage: true });
  step(`approval asked: "${notice.slice(0, 80)}…"; screenshot ${SCREENSHOT_APPROVAL}`);
  await page.locator('#messages [data-role="notice"]').last().locator('button[data-answer="once"]').click();
  // The answer to the button and the turn's reply are two messages whose frames may come
  // in either order: wait for both.
  const reply = await until('the reply after the approval and the answer to the button', () =>
    page.$$eval('#messages [data-role="assistant"]', (els) => {
      const done = els.filter((e) => e.dataset.state === 'done').map((e) => e.querySelector('.text').textContent);
      return done.includes('Ran it.') && done.some((t) => t.startsWith('Approved')) ? done : null;
    }));
  const approved = reply.find((t) => t.startsWith('Approved once'));
  if (!approved) fail(`no "Approved once" answer to the button among ${JSON.stringify(reply)}`);
  step(`approved through the button: "${approved}", the turn went on: "Ran it."`);
  const execLine = await page.$$eval('#messages .step summary', (els) => els.map((e) => e.textContent).pop());
  if (!/^exec date \+%Y — \d/.test(execLine ?? '')) {
    fail(`the exec step shows "${execLine}"`);
  }
}

async function cleanup() {
  if (fake) { fake.stdin.end(); fake.kill(); }
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
  await stopGateway();
}

let interrupted = false;
// Never leave the gateway behind: not when the output pipe closes, not when interrupted.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, async () => {
    interrupted = true;
    console.error(`FAIL: interrupted by ${sig}`);
    await cleanup();
    process.exit(1);
  });
}

const overall = setTimeout(async () => {
  console.error(`FAIL: overall timeout of ${OVERALL_TIMEOUT_MS / 1000} s`);
  await report();
  await cleanup();
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

async function report() {
  if (page) {
    await Promise.race([page.screenshot({ path: SCREENSHOT, fullPage: true }).then(
      () => console.error(`screenshot: ${SCREENSHOT}`), () => {}), sleep(3000)]);
  }
  if (pageLog.length) console.error(`--- page log ---\n${pageLog.slice(-40).join('\n')}`);
  console.error(`--- gateway output (${gatewayExit ? `exited: ${gatewayExit}` : 'running'}) ---\n${gatewayLog.slice(-8000)}`);
}

try {
  await main();
  clearTimeout(overall);
  await cleanup();
  step('PASS');
  process.exit(0);
} catch (e) {
  clearTimeout(overall);
  if (interrupted) await new Promise(() => {}); // the signal handler exits
  console.error(`FAIL: ${e instanceof TestFailure ? e.message : e.stack || e}`);
  await report();
  await cleanup();
  process.exit(1);
}
