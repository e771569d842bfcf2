export function blobChunk(seed: number, offset: number, length: number): Buffer;
export function blobSha(seed: number, length: number): string;
