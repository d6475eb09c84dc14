// A gantry GPU selection policy in JavaScript: each job goes to the tightest fit among the GPUs
// below 70 °C, and only when none of them can take it to the tightest fit of the hot ones.

import { bestFit, info, placeBy } from "./gantry-plugin/index.js";

/** GPUs at or above this are used only when no cooler one fits. */
const HOT_C = 70;

export const meta = {
  info: () => info("policy-cool-first-js", "0.1.0"),
};

export const policy = {
  place(pending, gpus, rules) {
    // A GPU that reports no temperature counts as cool: most do report one.
    const hot = (c) => (c.gpu.temperatureC !== undefined && c.gpu.temperatureC >= HOT_C ? 1 : 0);
    return placeBy(pending, gpus, rules, (a, b) => hot(a) - hot(b) || bestFit(a, b));
  },
};
