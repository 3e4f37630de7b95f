#!/usr/bin/env node
// A loads-protocol test runner in Node.js, for `cannonade run --test-runner`.
//
// cannonade (like Mozilla loads) starts one runner process per user of each cycle step
// and tells it what to do through its environment (docs/protocols.md §7.6):
//
//   LOADS_ZMQ_RECEIVER   ipc:// address: PUSH one JSON loads message per frame there
//   LOADS_AGENT_ID       LOADS_RUN_ID        copied into every message
//   LOADS_TOTAL_USERS    LOADS_CURRENT_USER  users in this step, this user (from 1)
//   LOADS_TOTAL_HITS     or LOADS_DURATION   hits to make, or seconds to run
//   LOADS_CURRENT_HIT    the first hit's number (1)
//
// The runner makes its hits itself. For every hit it runs each named test once:
// startTest, one add_hit per HTTP request, addSuccess / addFailure (an assertion
// failed) / addError (anything else went wrong), stopTest (§7.2, §7.3).
//
// Usage: TARGET=http://127.0.0.1:8080 node runner.js testHomepage[,testJson,...]

"use strict";

const assert = require("node:assert");
const http = require("node:http");
const https = require("node:https");
const zmq = require("zeromq");

const env = process.env;
const TARGET = (env.TARGET || "http://127.0.0.1:8080").replace(/\/+$/, "");
const REQUEST_TIMEOUT_MS = 30000;

// ---------------------------------------------------------------- the tests
// Each test gets a session whose requests are reported as add_hit messages.

const TESTS = {
  async testHomepage(session) {
    const res = await session.get("/");
    assert.strictEqual(res.status, 200);
    assert.strictEqual(res.body, "ok\n");
  },
  async testJson(session) {
    const res = await session.get("/json");
    assert.strictEqual(res.status, 200);
    const data = JSON.parse(res.body);
    assert.ok(data.token.startsWith("tok-"), `unexpected token ${data.token}`);
  },
  async testBroken(session) {
    // Fails on purpose: the target answers 404 for an unknown path.
    const res = await session.get("/nope");
    assert.ok(res.status === 200, `GET /nope: ${res.status} != 200`);
  },
};

// ---------------------------------------------------------------- reporting

class Reporter {
  constructor(address, agentId, runId) {
    // linger: messages still queued when the runner ends are delivered first.
    this.sock = new zmq.Push({ linger: 5000, sendHighWaterMark: 100000 });
    this.sock.connect(address);
    this.common = { agent_id: agentId, run_id: runId };
  }

  // One JSON object per frame. zeromq.js allows one send in flight per socket, so
  // every caller awaits its send before the next.
  async send(dataType, loadsStatus, fields = {}) {
    const msg = { data_type: dataType, ...this.common, loads_status: loadsStatus, ...fields };
    await this.sock.send(JSON.stringify(msg));
  }

  close() {
    this.sock.close();
  }
}

class Session {
  constructor(reporter, loadsStatus) {
    this.reporter = reporter;
    this.loadsStatus = loadsStatus;
  }

  async get(path) {
    return this.request("GET", path);
  }

  // Makes the request and reports it (status 0 when there was no response).
  async request(method, path) {
    const url = TARGET + path;
    const started = new Date();
    const t0 = process.hrtime.bigint();
    let res;
    try {
      res = await fetchText(method, url);
    } catch (err) {
      await this.hit(url, method, 0, started, t0);
      throw err;
    }
    await this.hit(url, method, res.status, started, t0, res.size);
    return res;
  }

  async hit(url, method, status, started, t0, size) {
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9; // seconds
    const fields = { url, method, status, started: started.toISOString(), elapsed };
    if (size !== undefined) fields.size = size;
    await this.reporter.send("add_hit", this.loadsStatus, fields);
  }
}

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 1 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 1 }),
};

function fetchText(method, url) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === "https:" ? https : http;
    const req = lib.request(u, { method, agent: agents[u.protocol] }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode, body: body.toString("utf8"), size: body.length });
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`timeout after ${REQUEST_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

// exc_info is [class, message, traceback] (§7.2): both real loads runners put the
// class first.
function excInfo(err) {
  if (err instanceof Error) {
    return [err.name || "Error", err.message || "", err.stack || ""];
  }
  return ["Error", String(err), ""];
}

async function runTest(name, reporter, loadsStatus) {
  const session = new Session(reporter, loadsStatus);
  await reporter.send("startTest", loadsStatus, { test: name });
  try {
    await TESTS[name](session);
    await reporter.send("addSuccess", loadsStatus, { test: name });
  } catch (err) {
    const kind = err instanceof assert.AssertionError ? "addFailure" : "addError";
    await reporter.send(kind, loadsStatus, { test: name, exc_info: excInfo(err) });
  }
  await reporter.send("stopTest", loadsStatus, { test: name });
}

function intEnv(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new Error(`${name}=${raw} is not an integer`);
  return n;
}

async function main() {
  const names = (process.argv[2] || "").split(",").filter(Boolean);
  const unknown = names.filter((n) => !Object.hasOwn(TESTS, n));
  if (names.length === 0 || unknown.length > 0) {
    console.error(`usage: runner.js TEST[,TEST...]; tests: ${Object.keys(TESTS).join(", ")}`);
    if (unknown.length) console.error(`unknown test(s): ${unknown.join(", ")}`);
    return 2;
  }
  const receiver = env.LOADS_ZMQ_RECEIVER;
  if (!receiver) {
    console.error("LOADS_ZMQ_RECEIVER is not set: run me with cannonade run --test-runner");
    return 2;
  }
  const users = intEnv("LOADS_TOTAL_USERS", 1);
  const user = intEnv("LOADS_CURRENT_USER", 1);
  const firstHit = intEnv("LOADS_CURRENT_HIT", 1);
  // LOADS_TOTAL_HITS wins; else LOADS_DURATION seconds; else one hit.
  let hits = intEnv("LOADS_TOTAL_HITS", null);
  let deadline = null;
  if (hits === null && env.LOADS_DURATION) {
    deadline = Date.now() + Number(env.LOADS_DURATION) * 1000;
  } else if (hits === null) {
    hits = 1;
  }

  const reporter = new Reporter(receiver, env.LOADS_AGENT_ID || "", env.LOADS_RUN_ID || "");
  try {
    const runStatus = [hits ?? -1, users, firstHit, user];
    await reporter.send("startTestRun", runStatus);
    for (let hit = firstHit; deadline === null ? hit <= hits : Date.now() < deadline; hit++) {
      // [hits in this cycle (-1: running for a duration), users, current hit, user]
      const loadsStatus = [hits ?? -1, users, hit, user];
      for (const name of names) {
        await runTest(name, reporter, loadsStatus);
      }
    }
    await reporter.send("stopTestRun", runStatus);
  } finally {
    reporter.close();
    for (const a of Object.values(agents)) a.destroy();
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exitCode = 1;
  },
);
