"""Records, formats, segment spans, masks, truncation and batching."""

from cotdistill.data.encode import EncodeConfig, EncodedExample, encode_record, encode_records, parse_sections
from cotdistill.data.formats import load_records, record_to_row, write_jsonl
from cotdistill.data.records import DataError, ReasoningRecord

__all__ = ["DataError", "EncodeConfig", "EncodedExample", "ReasoningRecord", "encode_record", "encode_records",
           "load_records", "parse_sections", "record_to_row", "write_jsonl"]
