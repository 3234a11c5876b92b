CREATE DATABASE prefect OWNER sentinance;
