#!/usr/bin/env node
// An exec runner in Node.js for `cannonade run --exec`: no npm dependencies.
//
// cannonade runs this program once per VU iteration and reads its stdout: one JSON
// object per line, here in go-lo's Output format (docs/protocols.md §8):
//
//   {"sequenceID":"<uuid>","url":"http://…/","method":"GET","status":200,"size":3,
//    "timestamp":"2026-11-22T01:33:02.828507474Z","duration":2430457,"error":null}
//
// `duration` is in NANOseconds (a Go time.Duration); `timestamp` is RFC 3339, taken
// after the response as go-lo does; `status` is 0 and `error` a string when there was
// no response. All lines of one run share a `sequenceID` (go-lo's journey id).
//
// Usage: runner.js URL_OR_PATH...   (a path is relative to $TARGET)
//   e.g. cannonade run --exec "examples/runners/node-exec/runner.js / /json" -u 2 --hits 2
// Each argument is fetched once, in order, over one keep-alive connection. The
// environment cannonade sets (CANNONADE_RUN_ID, CANNONADE_VU, CANNONADE_ITERATION) goes
// into the requests' User-Agent, so the target's logs can tell VUs apart.

"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const https = require("node:https");

const env = process.env;
const TIMEOUT_MS = 30000;

// Wall clock at nanosecond resolution: Date's milliseconds plus the monotonic clock.
const wallNs0 = BigInt(Date.now()) * 1000000n;
const monoNs0 = process.hrtime.bigint();

function rfc3339(ns) {
  const ms = ns / 1000000n;
  const iso = new Date(Number(ms)).toISOString(); // 2026-11-22T01:33:02.828Z
  const frac = (ns % 1000000000n).toString().padStart(9, "0");
  return `${iso.slice(0, 19)}.${frac}Z`;
}

function resolve(arg) {
  if (/^https?:\/\//.test(arg)) return new URL(arg);
  const base = env.TARGET;
  if (!base) throw new Error(`${arg} is a path but TARGET is not set`);
  return new URL(arg, base.endsWith("/") ? base : `${base}/`);
}

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 1 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 1 }),
};
const userAgent = `cannonade-node-exec (run ${env.CANNONADE_RUN_ID || "-"}, vu ${
  env.CANNONADE_VU || "-"
}, iteration ${env.CANNONADE_ITERATION || "-"})`;

// Resolves (never rejects) with {status, size, error}.
function get(url) {
  return new Promise((done) => {
    const lib = url.protocol === "https:" ? https : http;
    let settled = false;
    const finish = (r) => {
      if (!settled) {
        settled = true;
        done(r);
      }
    };
    const req = lib.request(
      url,
      { method: "GET", agent: agents[url.protocol], headers: { "user-agent": userAgent } },
      (res) => {
        let size = 0;
        res.on("data", (c) => {
          size += c.length;
        });
        res.on("end", () => finish({ status: res.statusCode, size, error: null }));
        res.on("error", (e) => finish({ status: 0, size, error: String(e.message || e) }));
      },
    );
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`timeout after ${TIMEOUT_MS} ms`)));
    req.on("error", (e) => finish({ status: 0, size: 0, error: String(e.message || e) }));
    req.end();
  });
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length === 0) {
    console.error("usage: runner.js URL_OR_PATH... (a path is relative to $TARGET)");
    return 2;
  }
  const urls = args.map(resolve);
  const sequenceID = crypto.randomUUID();
  for (const url of urls) {
    const t0 = process.hrtime.bigint();
    const r = await get(url);
    const t1 = process.hrtime.bigint();
    const line = {
      sequenceID,
      url: url.href,
      method: "GET",
      status: r.status,
      size: r.size,
      timestamp: rfc3339(wallNs0 + (t1 - monoNs0)),
      duration: Number(t1 - t0),
      error: r.error,
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
  for (const a of Object.values(agents)) a.destroy();
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
