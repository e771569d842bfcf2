export function blobChunk(seed: number, offset: number, length: number): Buffer;
