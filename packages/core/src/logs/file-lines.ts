import type { FileHandle } from 'node:fs/promises';

const chunkBytes = 256 * 1024;

/** A line of a file and where it starts. */
export interface FileLine {
  text: string;
  offset: number;
}

/** A line read forward, with the offset just past its newline. */
export interface ForwardLine extends FileLine {
  end: number;
}

/** Whole lines from `start` on; a last line without its newline is still being written. */
export async function* linesForward(
  handle: FileHandle,
  start: number,
  size: number,
): AsyncGenerator<ForwardLine> {
  let carry: Buffer = Buffer.alloc(0);
  let carryOffset = start;
  let position = start;

  while (position < size) {
    const length = Math.min(chunkBytes, size - position);
    const chunk = Buffer.alloc(length);
    const { bytesRead } = await handle.read(chunk, 0, length, position);

    if (bytesRead === 0) {
      return;
    }

    position += bytesRead;
    const data = carry.length > 0
      ? Buffer.concat([carry, chunk.subarray(0, bytesRead)])
      : chunk.subarray(0, bytesRead);
    let lineStart = 0;
    let newline = data.indexOf(10);

    while (newline !== -1) {
      yield {
        text: data.toString('utf8', lineStart, newline),
        offset: carryOffset + lineStart,
        end: carryOffset + newline + 1,
      };
      lineStart = newline + 1;
      newline = data.indexOf(10, lineStart);
    }

    carry = Buffer.from(data.subarray(lineStart));
    carryOffset += lineStart;
  }
}
