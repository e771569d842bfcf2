// Mocha reporter: the spec reporter's output plus a closing "N passed, N failed, N skipped" line,
// the format CI recognises. Pending tests are reported as skipped so they are visible.
'use strict';
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = this.stats;
      // Printed after spec's epilogue (registered first), so it is the last line.
      process.nextTick(() => console.log(`${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`));
    });
  }
}
module.exports = SummaryReporter;
