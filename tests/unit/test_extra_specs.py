"""Flavor extra-spec validation and parsing (pyct_driver.extra_specs)."""

import pytest

from pyct_driver import exception
from pyct_driver import extra_specs as es


@pytest.mark.parametrize("specs", [
    {},
    {"quota:cpu_shares": "2"},
    {"quota:cpu_shares": "262144"},
    {"quota:cpu_period": "1000", "quota:cpu_quota": "-1"},
    {"quota:cpu_period": "1000000", "quota:cpu_quota": "1000"},
    {"quota:disk_read_bytes_sec": "1",
     "quota:disk_write_bytes_sec": "10485760",
     "quota:disk_read_iops_sec": "100", "quota:disk_write_iops_sec": "200"},
    {"quota:disk_total_bytes_sec": "1048576", "quota:disk_read_iops_sec": "5"},
    {"quota:disk_total_iops_sec": "50", "quota:disk_write_bytes_sec": "5"},
    {"pyct:pids_max": "16"}, {"pyct:pids_max": "4194304"},
    {"pyct:privileged": "true"}, {"pyct:privileged": "False"},
    # Other namespaces belong to the scheduler and are ignored.
    {"hw:cpu_policy": "dedicated", "trait:CUSTOM_X": "required",
     "aggregate_instance_extra_specs:ssd": "true",
     "resources:VCPU": "whatever"},
])
def test_valid(specs):
    es.validate_extra_specs(specs)


@pytest.mark.parametrize("key,value,fragment", [
    ("quota:cpu_shares", "1", "out of range"),
    ("quota:cpu_shares", "262145", "out of range"),
    ("quota:cpu_shares", "1024.0", "not a decimal integer"),
    ("quota:cpu_shares", " 1024", "not a decimal integer"),
    ("quota:cpu_shares", "", "not a decimal integer"),
    ("quota:cpu_shares", 1024, "not a decimal integer"),
    ("quota:cpu_period", "999", "out of range"),
    ("quota:cpu_period", "1000001", "out of range"),
    ("quota:cpu_quota", "0", "-1 or"),
    ("quota:cpu_quota", "-2", "out of range"),
    ("quota:cpu_quota", "999", "out of range"),
    ("quota:disk_read_bytes_sec", "0", "out of range"),
    ("quota:disk_write_iops_sec", "-5", "out of range"),
    ("quota:disk_total_iops_sec", "abc", "not a decimal integer"),
    ("pyct:pids_max", "15", "out of range"),
    ("pyct:pids_max", "4194305", "out of range"),
    ("pyct:privileged", "yes", "'true' or 'false'"),
    ("quota:vif_inbound_average", "100", "unknown key"),
    ("quota:cpu_sharez", "100", "unknown key"),
    ("pyct:nope", "1", "unknown key"),
])
def test_invalid(key, value, fragment):
    with pytest.raises(exception.InvalidExtraSpec) as info:
        es.validate_extra_specs({key: value, "hw:foo": "bar"})
    assert key in str(info.value)
    assert fragment in str(info.value)
    assert info.value.code == 400


@pytest.mark.parametrize("total,other", [
    ("quota:disk_total_bytes_sec", "quota:disk_read_bytes_sec"),
    ("quota:disk_total_bytes_sec", "quota:disk_write_bytes_sec"),
    ("quota:disk_total_iops_sec", "quota:disk_read_iops_sec"),
    ("quota:disk_total_iops_sec", "quota:disk_write_iops_sec"),
])
def test_total_with_split_refused(total, other):
    with pytest.raises(exception.InvalidExtraSpec) as info:
        es.validate_extra_specs({total: "100", other: "50"})
    assert "together" in str(info.value)


def test_parsers():
    specs = {"quota:cpu_shares": "512", "quota:cpu_period": "50000",
             "quota:cpu_quota": "-1", "pyct:pids_max": "100",
             "pyct:privileged": "TRUE", "quota:disk_total_bytes_sec": "1000",
             "quota:disk_write_iops_sec": "7"}
    assert es.cpu_shares_from(specs) == 512
    assert es.cpu_period_from(specs) == 50000
    assert es.cpu_quota_from(specs) == -1
    assert es.pids_max_from(specs) == 100
    assert es.privileged_from(specs) is True
    assert es.disk_limits_from(specs) == es.DiskLimits(
        read_bps=1000, write_bps=1000, read_iops=None, write_iops=7)


def test_parsers_unset():
    assert es.cpu_shares_from({}) is None
    assert es.cpu_period_from({}) is None
    assert es.cpu_quota_from({}) is None
    assert es.pids_max_from({}) is None
    assert es.privileged_from({}) is False
    assert not es.disk_limits_from({}).any()


def test_parsers_refuse_bad_values():
    with pytest.raises(exception.InvalidExtraSpec):
        es.cpu_shares_from({"quota:cpu_shares": "x"})
    with pytest.raises(exception.InvalidExtraSpec):
        es.disk_limits_from({"quota:disk_total_iops_sec": "1",
                             "quota:disk_read_iops_sec": "1"})


def test_supported_keys_documented_and_accepted():
    assert "quota:cpu_shares" in es.SUPPORTED_KEYS
    assert "pyct:pids_max" in es.SUPPORTED_KEYS
    assert len(es.SUPPORTED_KEYS) == 14
    samples = {"pyct:privileged": "false", "pyct:host_root": "false",
               "pyct:dedicated_cpuset": "true", "pyct:nesting": "true",
               "quota:cpu_quota": "-1"}
    for key in es.SUPPORTED_KEYS:
        es.validate_extra_specs({key: samples.get(key, "2000")})
