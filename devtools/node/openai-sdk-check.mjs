// The official openai SDK for Node against a running gateway: each check calls one endpoint the way
// a Node client does, asserts what the SDK parsed, and reports it as JSON for the Python side
// (tests/e2e/test_node_sdk.py) to compare with what the Python SDK and the mock say.
//
//   node openai-sdk-check.mjs BASE_URL API_KEY CHECK [CHECK ...]
//
// Prints {"<check>": <its result>, ...} and exits 0, or prints the failure and exits 1.
// To cover another endpoint, add an entry to CHECKS: an async function of the client that
// asserts with `assert` and returns what the Python test should compare.

import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";

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

// A WAV file the checks upload: a 44-byte header (16 kHz 16-bit mono) and `dataBytes` of silence.
function silentWav(dataBytes) {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(16_000, 24);
  header.writeUInt32LE(32_000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(dataBytes, 40);
  return Buffer.concat([header, Buffer.alloc(dataBytes)]);
}
const UPLOAD = silentWav(32_000);
// Long enough that the worker streams it in several chunks (16 KiB each) at 10 ms a character.
const SPOKEN = "hello there, this is speech. ".repeat(10);

function images(answer, key) {
  assert.ok(Number.isInteger(answer.created));
  answer.data.forEach((image) => assert.equal(typeof image[key], "string"));
  return answer.data.map((image) => image[key]);
}

// Speech as a Node client plays it: the SDK hands back the fetch Response; its body is read
// chunk by chunk as it arrives.
async function speech(client, format, input) {
  const response = await client.audio.speech.create({ model: MODEL, voice: "alloy", input, response_format: format });
  assert.equal(response.ok, true);
  const chunks = [];
  for await (const chunk of response.body) chunks.push(Buffer.from(chunk));
  const audio = Buffer.concat(chunks);
  return { content_type: response.headers.get("content-type"), chunks: chunks.length, bytes: audio.length, head: audio.subarray(0, 44).toString("base64") };
}

async function transcription(client, format) {
  const file = await toFile(UPLOAD, "hello.wav", { type: "audio/wav" });
  return client.audio.transcriptions.create({ model: MODEL, file, response_format: format });
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
  "images.b64_json": async (client) =>
    images(await client.images.generate({ model: MODEL, prompt: "a red fox", n: 2, response_format: "b64_json" }), "b64_json"),
  "images.url": async (client) =>
    images(await client.images.generate({ model: MODEL, prompt: "a red fox", response_format: "url" }), "url"),
  "speech.wav": async (client) => {
    const found = await speech(client, "wav", SPOKEN);
    const head = Buffer.from(found.head, "base64");
    assert.equal(head.toString("latin1", 0, 4), "RIFF");
    assert.equal(head.toString("latin1", 8, 16), "WAVEfmt ");
    assert.equal(head.readUInt32LE(40), found.bytes - 44); // the data chunk holds the rest
    return found;
  },
  "speech.mp3": async (client) => {
    const found = await speech(client, "mp3", SPOKEN);
    const head = Buffer.from(found.head, "base64");
    assert.equal(head[0], 0xff); // an MPEG audio frame sync
    assert.equal(head[1] & 0xe0, 0xe0);
    return found;
  },
  "transcriptions.json": async (client) => {
    const answer = await transcription(client, "json");
    assert.equal(typeof answer.text, "string");
    return answer;
  },
  "transcriptions.verbose_json": async (client) => {
    const answer = await transcription(client, "verbose_json");
    assert.equal(typeof answer.duration, "number");
    assert.ok(Array.isArray(answer.segments));
    return { text: answer.text, duration: answer.duration, language: answer.language, segments: answer.segments.length };
  },
  "transcriptions.text": async (client) => {
    const answer = await transcription(client, "text");
    assert.equal(typeof answer, "string");
    return answer;
  },
  "transcriptions.srt": async (client) => {
    const answer = await transcription(client, "srt");
    assert.equal(typeof answer, "string");
    return answer;
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
