// The real Cocobase JS SDK (npm `cocobase` 1.6.0) watching a collection on larder.
//
// The SDK opens its sockets at the hard-coded wss://api.cocobase.cc; Node has no WebSocket of
// its own, so the app supplies one (here `ws`), which points that host at larder. REST calls
// follow `baseURL`. Environment: NODE_MODULES (where cocobase and ws are installed),
// LARDER_URL (http://127.0.0.1:PORT) and LARDER_SK (a secret key).

import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.NODE_MODULES;
const url = process.env.LARDER_URL;
const key = process.env.LARDER_SK;
const require = createRequire(join(modules, "noop.js"));
const WS = require("ws");

class ToLarder extends WS {
  constructor(address, ...rest) {
    super(address.replace("wss://api.cocobase.cc", url.replace(/^http/, "ws")), ...rest);
  }
}
globalThis.WebSocket = ToLarder;

const { Cocobase } = await import(
  pathToFileURL(join(modules, "cocobase", "dist", "index.js")).href
);

setTimeout(() => {
  console.error("FAIL: the suite did not finish within 45 s");
  process.exit(2);
}, 45_000).unref();

let failures = 0;
function check(name, ok, detail) {
  if (ok) {
    console.log(`ok   ${name}`);
  } else {
    failures += 1;
    console.log(`FAIL ${name}: ${JSON.stringify(detail)}`);
  }
}

/** Resolves with the first value `take` returns that is not undefined, polled every 20 ms. */
function until(what, take, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const value = take();
      if (value !== undefined) return resolve(value);
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 20);
    };
    poll();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const db = new Cocobase({ apiKey: key, baseURL: url });

// --- A filtered watcher: creates, updates and deletes of matching documents only.
const events = [];
let connected;
let connections = 0;
let reconnects = 0;
const watcher = db.realtime.collection("tasks", { status: "open", priority_gte: 3 });
watcher.onConnected((frame) => {
  connected = frame;
  connections += 1;
});
watcher.onCreate((frame) => events.push(["create", frame]));
watcher.onUpdate((frame) => events.push(["update", frame]));
watcher.onDelete((frame) => events.push(["delete", frame]));
watcher.onReconnect(() => (reconnects += 1));
watcher.connect();

const hello = await until("connected", () => connected);
check("connected names the collection", hello.collection_id === "tasks", hello);
check("connected echoes the filters", hello.filters?.status === "open", hello);

const kept = await db.createDocument("tasks", { title: "write docs", status: "open", priority: 5 });
await db.createDocument("tasks", { title: "too low", status: "open", priority: 1 });
const other = await db.createDocument("tasks", { title: "done already", status: "done", priority: 9 });
await db.deleteDocument("tasks", other.id);
await db.updateDocument("tasks", kept.id, { priority: 4 });
await db.updateDocument("tasks", kept.id, { status: "done" });

await until("four events", () => (events.length >= 3 ? true : undefined));
await sleep(300);
const kinds = events.map(([kind]) => kind);
check("only matching changes arrive, leaving the filter is a delete", JSON.stringify(kinds) === '["create","update","delete"]', kinds);
const [, created] = events[0];
check("create carries the document as data", created.data?.data?.title === "write docs" && created.data?.id === kept.id, created);
check("create carries it as document too", created.document?.id === kept.id, created);
check("update carries the new data", events[1][1].data?.data?.priority === 4, events[1][1]);
check("update carries the old data", events[1][1].old_data?.priority === 5, events[1][1]);
check("delete names the document", events[2][1].data?.id === kept.id, events[2][1]);
check("no webhook URL or permissions leak", !JSON.stringify(events).includes("webhook_url") && !JSON.stringify(events).includes("permissions"), events);

// --- A reset (the collection's rules change) closes the socket: the SDK reconnects and fires
// onReconnect, its hook for reloading.
const put = await fetch(`${url}/api/admin/collections/tasks`, {
  method: "PUT",
  headers: { "content-type": "application/json", "x-api-key": key },
  body: JSON.stringify({ hidden_fields: ["secret"] }),
});
check("the rules change is accepted", put.ok, put.status);
await until("the reconnect", () => (reconnects > 0 ? true : undefined), 15_000);
check("the SDK reconnected after the reset", reconnects === 1, reconnects);
await until("connected again", () => (connections >= 2 ? true : undefined));
const before = events.length;
await db.createDocument("tasks", { title: "after", status: "open", priority: 7 });
await until("the event after reconnecting", () => (events.length > before ? true : undefined));
check("events flow again after the reconnect", events.at(-1)[0] === "create", events.at(-1));
watcher.disconnect();

// --- onSnapshot: the list, then the list again after each change.
const snapshots = [];
const unsubscribe = db.onSnapshot("notes", (docs) => snapshots.push(docs));
await until("the first snapshot", () => (snapshots.length >= 1 ? true : undefined));
await sleep(300); // the socket opens after the first fetch
await db.createDocument("notes", { text: "hello" });
await until("the second snapshot", () => (snapshots.length >= 2 ? true : undefined));
check("onSnapshot lists again after a change", snapshots.at(-1).length === snapshots[0].length + 1, snapshots.map((s) => s.length));
unsubscribe();

// --- Refusals as the hosted service sends them.
const refused = await new Promise((resolve) => {
  const socket = new WS(`${url.replace(/^http/, "ws")}/realtime/collections/tasks`);
  const frames = [];
  socket.on("open", () => socket.send(JSON.stringify({ api_key: "pk_live_not-a-key" })));
  socket.on("message", (data) => frames.push(JSON.parse(data.toString())));
  socket.on("close", (code) => resolve({ code, frames }));
});
check("a bad key is refused with the hosted frame and 1008", refused.code === 1008 && refused.frames[0]?.error === "Invalid API key", refused);

const missing = await new Promise((resolve) => {
  const socket = new WS(`${url.replace(/^http/, "ws")}/realtime/collections/nope`);
  const frames = [];
  socket.on("open", () => socket.send(JSON.stringify({ api_key: key })));
  socket.on("message", (data) => frames.push(JSON.parse(data.toString())));
  socket.on("close", (code) => resolve({ code, frames }));
});
check("a missing collection is refused", missing.code === 1008 && missing.frames[0]?.error === "Collection not found or access denied", missing);

const pong = await new Promise((resolve) => {
  const socket = new WS(`${url.replace(/^http/, "ws")}/realtime/collections/tasks`);
  socket.on("open", () => {
    socket.send(JSON.stringify({ api_key: key }));
    socket.send(JSON.stringify({ type: "ping" }));
  });
  socket.on("message", (data) => {
    const frame = JSON.parse(data.toString());
    if (frame.type === "pong") {
      socket.close();
      resolve(frame);
    }
  });
});
check("the SDK's ping is answered", pong.type === "pong", pong);

if (failures > 0) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log("all checks passed");
process.exit(0);
