// Public API of the OpenFlow 1.3 codec. Pure functions, no I/O.
export * from './constants.ts';
export { ok, err, guard, OfpEncodeError, type Result, type DecodeError, type DecodeErrorKind } from './result.ts';
export {
  encodeMessage, decodeMessage, flowMod, packetOut, MESSAGE_CODECS,
  type OfpMessage, type OfpMessageType, type MessageOf, type FlowMod, type FlowModCommand, type PacketIn,
  type PacketOut, type FlowRemoved, type FeaturesReply,
} from './messages.ts';
export { splitMessages } from './framing.ts';
export { encodeMatch, decodeMatch, type Match, type Masked, type MatchField, type UnknownOxm } from './match.ts';
export { OXM_FIELDS, type OxmFieldDef } from './oxm.ts';
export { encodeActions, decodeActions, ACTION_CODECS, type Action, type StandardAction } from './actions.ts';
export { ctFlushMessage, encodeCtFlush, decodeCtFlush, NXT_CT_FLUSH, type CtFlush, type CtTuple } from './ct-flush.ts';
export { seqShiftAction, NXAST, type NiciraAction, type NxSeqActionType, type NxSeqRegActionType, type Subfield } from './nicira.ts';
export { encodeInstructions, decodeInstructions, INSTRUCTION_CODECS, type Instruction } from './instructions.ts';
export {
  MULTIPART_CODECS, type MultipartRequestBody, type MultipartReplyBody, type FlowStats, type FlowStatsRequest,
  type TableStats, type PortStats,
} from './multipart.ts';
export type { PortDesc } from './port.ts';
export { MULTIPART_LIMITS, MultipartBudget, type MultipartLimits } from './multipart-limits.ts';
