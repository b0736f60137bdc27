// The official openai SDK for Node against a running gateway: each check calls one endpoint the way
// a Node client does, asserts what the SDK parsed, and reports it as JSON for the Python side
// (tests/e2e/test_node_sdk.py) to compare with what the Python SDK and the mock say.
//
//   node openai-sdk-check.mjs BASE_URL API_KEY CHECK [CHECK ...]
//
// Prints {"<check>": <its result>, ...} and exits 0, or prints the failure and exits 1.
// To cover another endpoint (images, audio, ...), add an entry to CHECKS: an async function of
// the client that asserts with `assert` and returns what the Python test should compare.

import assert from "node:assert/strict";
import OpenAI from "openai";

const MODEL = "mock";

function decodeBase64Floats(text) {
  const bytes = Buffer.from(text, "base64");
  return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
}

function vectors(answer) {
  assert.equal(answer.object, "list");
  assert.deepEqual(answer.data.map((item) => item.index), answer.data.map((_, i) => i));
  assert.ok(answer.usage.prompt_tokens > 0);
  return answer.data.map((item) => item.embedding);
}

const CHECKS = {
  // Floats on the wire, as asked.
  "embeddings.float": async (client) => {
    const answer = await client.embeddings.create({ model: MODEL, input: ["first text", "second text"], encoding_format: "float" });
    const found = vectors(answer);
    found.forEach((vector) => assert.ok(Array.isArray(vector) && vector.every(Number.isFinite)));
    return found;
  },
  // base64 asked for explicitly: the SDK hands the string over; decoded here as the SDK would.
  "embeddings.base64": async (client) => {
    const answer = await client.embeddings.create({ model: MODEL, input: ["first text", "second text"], encoding_format: "base64" });
    return vectors(answer).map((encoded) => {
      assert.equal(typeof encoded, "string");
      return decodeBase64Floats(encoded);
    });
  },
  // The SDK's default: base64 on the wire, decoded to floats by the SDK itself.
  "embeddings.default": async (client) => {
    const found = vectors(await client.embeddings.create({ model: MODEL, input: ["first text", "second text"] }));
    found.forEach((vector) => assert.ok(Array.isArray(vector)));
    return found;
  },
  "responses.stream": async (client) => {
    const stream = await client.responses.create({ model: MODEL, instructions: "Be brief.", input: "Hello from Node", stream: true });
    const types = [];
    const sequence = [];
    let text = "";
    let last;
    for await (const event of stream) {
      types.push(event.type);
      sequence.push(event.sequence_number);
      if (event.type === "response.output_text.delta") text += event.delta;
      last = event;
    }
    assert.equal(last.type, "response.completed");
    assert.deepEqual(sequence, sequence.map((_, i) => i));
    const usage = last.response.usage;
    assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    assert.equal(last.response.output_text ?? text, text); // output_text: the SDK's helper, when it adds one
    return { types, text, id: last.response.id, status: last.response.status, usage };
  },
  "responses.create": async (client) => {
    const response = await client.responses.create({ model: MODEL, input: "Hello from Node" });
    assert.equal(response.object, "response");
    assert.equal(response.output[0].type, "message");
    return { output_text: response.output_text, id: response.id, status: response.status, usage: response.usage };
  },
};

const [baseURL, apiKey, ...names] = process.argv.slice(2);
if (!baseURL || !apiKey || names.length === 0) {
  console.error(`usage: node openai-sdk-check.mjs BASE_URL API_KEY CHECK...\nchecks: ${Object.keys(CHECKS).join(" ")}`);
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const results = {};
try {
  for (const name of names) {
    const check = CHECKS[name];
    assert.ok(check, `no check named ${name}`);
    results[name] = await check(client);
  }
} catch (error) {
  console.error(error);
  process.exit(1);
}
console.log(JSON.stringify(results));
