// Moved to topo/lib/ (the demo uses it too); kept here for the tests' imports.
export * from '../../topo/lib/exec.ts';
