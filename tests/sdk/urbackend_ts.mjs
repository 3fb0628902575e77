// The real urBackend TypeScript SDK (npm `@urbackend/sdk` 0.4.8) against larder.
//
// Environment: NODE_MODULES (where the SDK is installed), LARDER_URL (http://127.0.0.1:PORT),
// LARDER_SK (a secret key), LARDER_PK (a publishable key).

import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.NODE_MODULES;
const url = process.env.LARDER_URL;
const { default: urBackend } = await import(
  pathToFileURL(join(modules, "@urbackend", "sdk", "dist", "index.mjs")).href
);

setTimeout(() => {
  console.error("FAIL: the suite did not finish within 45 s");
  process.exit(2);
}, 45_000).unref();

let failures = 0;
async function check(name, body) {
  try {
    await body();
    console.log(`ok   ${name}`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}: ${error?.stack ?? error}`);
  }
}
function assert(condition, detail) {
  if (!condition) throw new Error(JSON.stringify(detail));
}

const server = urBackend({ apiKey: process.env.LARDER_SK, baseUrl: url });
const app = urBackend({ apiKey: process.env.LARDER_PK, baseUrl: url });

await check("db: insert, getOne, getAll, patch, delete reports deleted", async () => {
  const stored = await server.db.insert("products", { name: "lamp", price: 30 });
  assert(typeof stored._id === "string", stored);
  const id = stored._id;
  const one = await server.db.getOne("products", id);
  assert(one.name === "lamp", one);
  const all = await server.db.getAll("products", { filter: { price_gte: 10 } });
  assert(Array.isArray(all) && all.length === 1, all);
  const patched = await server.db.patch("products", id, { price: 25 });
  assert(patched.price === 25 && patched.name === "lamp", patched);
  const removed = await server.db.delete("products", id);
  assert(removed.deleted === true, removed);
});

await check("schema: getSchema names the collection and its declared fields", async () => {
  const schema = await server.schema.getSchema("products");
  assert(schema.name === "products" && Array.isArray(schema.model), schema);
  assert(schema.model.some((field) => field.key === "price"), schema);
});

await check("schema: a collection the caller may not list is not found", async () => {
  let error;
  try {
    await app.schema.getSchema("products");
  } catch (e) {
    error = e;
  }
  assert(error && (error.statusCode === 404 || error.status === 404 || /not found/i.test(error.message)), String(error));
});

await check("auth: sign up, then read the profile with the token", async () => {
  const signed = await app.auth.signUp({ email: "ada@example.com", password: "analytical engine" });
  assert(signed.accessToken, signed);
  const me = await app.auth.me();
  assert(me.email === "ada@example.com", me);
});

if (failures > 0) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log("all checks passed");
process.exit(0);
