// Browser test of the web chat page served by `pincer gateway` at GET /.
//
//   node tests/browser/webchat.mjs target/debug/pincer [target/debug/openai-fake]
//
// Starts the gateway in a temp PINCER_HOME with a slow-streaming echo provider, drives the
// page in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM), checks a streamed
// reply, kills `pincer/agents` through the admin API, waits for the tree panel to show the
// restart, and checks the gateway still answers. Given the OpenAI fake's program, it also
// talks to a second agent, `tools`, on the fake: a tool call shows as a collapsible step,
// and an `exec` call asks first, with buttons that answer it. Leaves screenshots in
// tests/browser/ (webchat.png at the end or at the failure, webchat-approval.png with the
// question shown). Exit 0 on success, 1 with a reason otherwise.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const OVERALL_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 15_000;
const KILL_PATH = 'pincer/agents';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCREENSHOT = path.join(HERE, 'webchat.png');
const SCREENSHOT_APPROVAL = path.join(HERE, 'webchat-approval.png');

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
  let config = '[providers.echo]\nchunkSize = 4\nchunkDelayMs = 30\n';
  if (fakeBin) {
    // The `tools` agent's model: a call of echo, an answer; a call of exec, an answer.
    const url = await startFake([
      'tool:echo:{"text":"ping"}', 'text:Echo said ping.',
      'tool:exec:{"command":"date +%Y"}', 'text:Ran it.',
    ]);
    step(`OpenAI fake at ${url}`);
    config += `\n[providers.openai]\nbaseUrl = "${url}"\napiKey = "sk-test"\n\n[response]\ntransport = "sse"\n\n` +
      '[agents.main]\nmodel = "echo/echo"\ndefault = true\n\n' +
      '[agents.tools]\nmodel = "openai/gpt-4.1"\nskills = ["echo", "exec"]\n';
  }
  fs.writeFileSync(path.join(home, 'pincer.toml'), config);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  startGateway(home, port);

  await until('GET /readyz to answer 200', async () => (await fetch(`${base}/readyz`)).status === 200,
    READY_TIMEOUT_MS, 100);
  step('gateway ready');

  const index = await fetch(`${base}/`);
  const ctype = index.headers.get('content-type') || '';
  if (index.status !== 200 || !ctype.includes('text/html')) {
    fail(`GET / answered ${index.status} with content-type "${ctype}", expected 200 text/html`);
  }

  browser = await chromium.launch({
    // Our own handlers stop the gateway too; see the end of this file.
    handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on('websocket', (ws) => {
    pageLog.push(`websocket open ${ws.url()}`);
    ws.on('close', () => pageLog.push(`websocket closed ${ws.url()}`));
  });
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

  // 2. Kill a subtree through the admin API; the tree panel must show the restart.
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

  // 3. The gateway keeps answering after the kill.
  const second = await chat('still there after the kill');
  if (!second.final.includes('still there after the kill')) {
    fail(`reply after the kill "${second.final}" does not contain the input`);
  }
  step(`reply after kill ok: "${second.final}"`);

  if (fakeBin) await tools();

  // What a person sees at the end: look at it after a change to the page.
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  step(`screenshot: ${SCREENSHOT}`);

  const ready = await page.$eval('#ready', (e) => e.dataset.ready);
  if (ready !== 'true') step(`note: #ready shows data-ready=${ready}`);
  if (pageErrors.length) fail(`page errors: ${pageErrors.join('; ')}`);
  fs.rmSync(home, { recursive: true, force: true });
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
  const reply = await until('the reply after the approval', () =>
    page.$$eval('#messages [data-role="assistant"]', (els) => {
      const done = els.filter((e) => e.dataset.state === 'done').map((e) => e.querySelector('.text').textContent);
      return done.includes('Ran it.') ? done : null;
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
