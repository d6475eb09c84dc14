"""The policy's tests, natively: `componentize-py -d wit -w policy-plugin bindings .` once, then
`python3 -m unittest`."""

import unittest

import app
from gantry_plugin.testing import gpu, job, rules, run


class CoolFirst(unittest.TestCase):
    def test_a_job_goes_to_a_cool_gpu_even_where_a_hot_one_fits_it_tighter(self):
        placed = run(app.Policy(), [job(1, 20_000)], [gpu(0, 24_576, temperature_c=78), gpu(1, 81_920, temperature_c=45)], rules())
        self.assertEqual(placed, [(1, [1])])

    def test_when_no_cool_gpu_can_take_it_the_tightest_hot_one_does(self):
        gpus = [gpu(0, 16_384, temperature_c=40), gpu(1, 81_920, temperature_c=85), gpu(2, 49_152, temperature_c=75)]
        self.assertEqual(run(app.Policy(), [job(1, 40_000)], gpus, rules()), [(1, [2])])


if __name__ == "__main__":
    unittest.main()
