// The policy's tests, natively: `node --test`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { gpu, job, rules, run } from "./gantry-plugin/testing.js";
import { policy } from "./policy.js";

test("a job goes to a cool GPU even where a hot one fits it tighter", () => {
  assert.deepEqual(run(policy, [job(1, 20_000)], [gpu(0, 24_576, 78), gpu(1, 81_920, 45)], rules()), [[1, [1]]]);
});

test("when no cool GPU can take it the tightest hot one does", () => {
  const gpus = [gpu(0, 16_384, 40), gpu(1, 81_920, 85), gpu(2, 49_152, 75)];
  assert.deepEqual(run(policy, [job(1, 40_000)], gpus, rules()), [[1, [2]]]);
});
