/** Prints the run's totals as one plain line (`N passed, N failed, N skipped`) for CI logs. */
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests: passed, numFailedTests: failed, numPendingTests: skipped, numTodoTests: todo } = results;
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped + todo} skipped\n`);
  }
}
