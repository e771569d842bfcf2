import assert from 'node:assert/strict';
describe('runner', () => {
  it('runs TypeScript tests', () => { assert.equal(typeof 1, 'number'); });
});
