// The Node `openai` SDK's Responses API against Wrapserve: create, parse (zod), stream.
// Run by tests/openai/test_node_sdk.py with BASE_URL and MODEL set; prints one JSON line.
import OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: "unused", maxRetries: 0 });
const model = process.env.MODEL;
const out = {};

const created = await client.responses.create({ model, input: "Say hello.", max_output_tokens: 16 });
out.create = { status: created.status, text: created.output_text };

const City = z.object({ name: z.string().max(40), country: z.string().max(40) });
const parsed = await client.responses.parse({
  model,
  input: "Which city is the Eiffel Tower in?",
  text: { format: zodTextFormat(City, "city") },
  max_output_tokens: 120,
});
out.parse = { status: parsed.status, parsed: parsed.output_parsed };

const stream = client.responses.stream({ model, input: "Count to three.", max_output_tokens: 24 });
let deltas = "";
let last;
for await (const event of stream) {
  if (event.type === "response.output_text.delta") deltas += event.delta;
  last = event;
}
const message = last.response.output.find((item) => item.type === "message");
out.stream = { deltas, last: last.type, text: message ? message.content[0].text : null };

console.log(JSON.stringify(out));
