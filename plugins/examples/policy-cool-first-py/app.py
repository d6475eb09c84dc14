"""A gantry GPU selection policy in Python: each job goes to the tightest fit among the GPUs
below 70 °C, and only when none of them can take it to the tightest fit of the hot ones."""

import gantry_plugin
import wit_world
from gantry_plugin import best_fit

#: GPUs at or above this are used only when no cooler one fits.
HOT_C = 70


class Meta(wit_world.exports.Meta):
    def info(self):
        return gantry_plugin.info("policy-cool-first-py", "0.1.0")


class Policy(wit_world.exports.Policy):
    def place(self, pending, gpus, rules):
        # A GPU that reports no temperature counts as cool: most do report one.
        def hot(c):
            return c.gpu.temperature_c is not None and c.gpu.temperature_c >= HOT_C

        return gantry_plugin.place_by(pending, gpus, rules, lambda c: (hot(c), best_fit(c)))
